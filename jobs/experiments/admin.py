"""The admin's side of experiments: the list, an experiment's page (summary, arms, scores,
each entity's two sides next to each other with the differences highlighted, a filter to
regressions, "Publish candidate", its provider batches and its log) and the human scorers'
blind comparison queue."""

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from config.api.errors import DomainError
from config.api.templatetags.admin_values import as_json_text, cut_text
from entities.json_values import json_equal
from entities.selectors import entity_labels
from jobs.experiments import human, services, summaries
from jobs.experiments.models import WORKERS_ONLY, Experiment
from jobs.experiments.selectors import entities_waiting
from jobs.record_admin import LOGS_SHOWN, TEXT_SHOWN, RecordAdmin
from jobs.waits.ai_batch.kind import BATCHES_SHOWN
from jobs.waits.ai_batch.selectors import experiment_batches

# Each entity's two sides, its label and the verdicts' reasons are entity data: the API's
# results take this permission, and so do they here. Without it, an experiment's page shows
# what the API's experiment does (summary, arms, scores, batches, log) and no entity.
ENTITY_DATA = "entities.view_entity"

PAGE_SIZE = 50
# Cancelling an experiment is cancelling its job, as the API's `POST /jobs/:id/cancel` is.
CANCEL_PERMISSION = "jobs.change_job"


def _shown(value) -> str:
    """A value beside its other side, cut to what a cell shows (the API's results have it
    whole)."""
    return cut_text(value if isinstance(value, str) else as_json_text(value, indent=1))


def _value_left(side: dict, other: dict, field: str):
    """What `side` left `field` as: what it changed it to; else its data's value; else (the
    entity's status, which a side's data does not hold, or any field of a side that failed
    before it ran) the value both sides started from, as the other side's change records it."""
    for change in side["changes"]:
        if change["field"] == field:
            return change["after"]
    data = side.get("data") or {}
    if field in data:
        return data[field]
    return next((c["before"] for c in other["changes"] if c["field"] == field), None)


def _fields(baseline: dict, candidate: dict) -> list[dict]:
    """Each field either side changed, with the value each side left it as and whether
    they differ (as JSON values: `true` is not `1`, as `sides.differ` compares them)."""
    names = sorted(
        {change["field"] for side in (baseline, candidate) for change in side["changes"]}
    )
    rows = []
    for name in names:
        base, cand = _value_left(baseline, candidate, name), _value_left(candidate, baseline, name)
        rows.append(
            {
                "name": name,
                "baseline": _shown(base),
                "candidate": _shown(cand),
                "differ": not json_equal(base, cand),
            }
        )
    return rows


@admin.register(Experiment)
class ExperimentAdmin(RecordAdmin):
    list_display = [
        "id",
        "workflow",
        "baseline_number",
        "candidate_number",
        "status",
        "done",
        "total",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["id", "workflow__id", "workflow__name"]
    list_select_related = ["workflow", "baseline", "candidate"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer(*WORKERS_ONLY)

    @admin.display(description="baseline")
    def baseline_number(self, experiment):
        return experiment.baseline.number

    @admin.display(description="candidate")
    def candidate_number(self, experiment):
        return experiment.candidate.number

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/compare/<str:scorer>/",
                view(self.compare_view),
                name="jobs_experiment_compare",
            ),
            path(
                "<path:object_id>/progress/",
                view(self.progress_view),
                name="jobs_experiment_progress",
            ),
            path(
                "<path:object_id>/cancel/",
                view(self.cancel_view),
                name="jobs_experiment_cancel",
            ),
            *super().get_urls(),
        ]

    def progress_view(self, request, object_id):
        """The experiment's entities done of its total, as the progress bar polls it."""
        experiment = self._experiment(request, object_id)
        return JsonResponse(
            {
                "status": experiment.status,
                "total": experiment.total,
                "completed": experiment.done,
                "waiting": experiment.entities_waiting,
                "ended": experiment.is_ended,
            }
        )

    def cancel_view(self, request, object_id):
        """POST: cancel the experiment, as the API's cancel of its job does (with its
        permission), and show its page again."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        experiment = self._experiment(request, object_id)
        if not request.user.has_perm(CANCEL_PERMISSION):
            raise PermissionDenied
        try:
            services.experiment_cancel(experiment_id=experiment.pk)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        else:
            self.message_user(request, "The experiment was cancelled.")
        return redirect("admin:jobs_experiment_change", quote(experiment.pk))

    def _experiment(self, request, object_id, *, entity_data: bool = False) -> Experiment:
        """The experiment, if the user may view it; `entity_data`: and read its entities'
        data (a comparison shows nothing else), as the API's results take."""
        experiment = get_object_or_404(
            Experiment.objects.select_related("workflow", "baseline", "candidate").annotate(
                entities_waiting=entities_waiting()
            ),
            pk=unquote(object_id),
        )
        if not self.has_view_permission(request, experiment):
            raise PermissionDenied
        if entity_data and not request.user.has_perm(ENTITY_DATA):
            raise PermissionDenied
        return experiment

    def change_view(self, request, object_id, form_url="", extra_context=None):
        experiment = self._experiment(request, object_id)
        show_data = request.user.has_perm(ENTITY_DATA)
        results = experiment.results.order_by("position")
        if not show_data:  # the page's Entities section is left out: no entity read
            results = results.none()
        shown = request.GET.get("show", "")
        if shown in ("regressed", "changed"):
            results = results.filter(**{shown: True})
        page = Paginator(results, PAGE_SIZE).get_page(request.GET.get("page"))
        labels = entity_labels(entity_ids=[result.entity_id for result in page])
        humans = [s["name"] for s in experiment.scorers if s["type"] == "human"]
        context = {
            **self.admin_site.each_context(request),
            "title": f"Experiment {experiment.pk}",
            "opts": self.model._meta,
            "experiment": experiment,
            "progress_percent": 100 * experiment.done / experiment.total if experiment.total else 0,
            "batches": experiment_batches(experiment_id=experiment.pk, limit=BATCHES_SHOWN),
            "logs": experiment.logs.order_by("-pk")[:LOGS_SHOWN],
            "logs_shown": LOGS_SHOWN,
            "text_shown": TEXT_SHOWN,
            "arms": summaries.arms_summary(experiment),
            "scores": summaries.scores_summary(experiment),
            "show_data": show_data,
            "page": page,
            "shown": shown,
            "rows": [
                {
                    "result": result,
                    "label": labels.get(result.entity_id, ""),
                    "fields": _fields(result.baseline, result.candidate),
                    "verdicts": result.verdicts,
                }
                for result in page
            ],
            "queues": [
                {"name": name, "left": human.human_pending(experiment, name).count()}
                for name in humans
            ],
            "can_cancel": request.user.has_perm(CANCEL_PERMISSION),
            "can_publish": request.user.has_perm("workflows.change_workflow")
            and experiment.candidate.number != experiment.workflow.version,
            "publish_url": reverse(
                "admin:workflows_workflow_publish",
                args=[experiment.workflow_id, experiment.candidate.number],
            ),
        }
        return TemplateResponse(request, "admin/jobs/experiment/change_form.html", context)

    def compare_view(self, request, object_id, scorer):
        """The next blind comparison of `scorer` no one has decided: the entity, then its two
        sides as A and B (in the entity's seeded order; the versions are not named)."""
        experiment = self._experiment(request, object_id, entity_data=True)
        if not any(s["type"] == "human" and s["name"] == scorer for s in experiment.scorers):
            raise Http404(f"This experiment has no human scorer {scorer!r}.")
        if request.method == "POST":
            if not request.user.has_perm("jobs.change_experiment"):
                raise PermissionDenied
            result_id = request.POST.get("result", "")
            try:
                human.human_decide(
                    experiment_id=experiment.pk,
                    result_id=int(result_id),
                    scorer=scorer,
                    choice=request.POST.get("choice", ""),
                    comment=request.POST.get("comment", ""),
                    user_id=request.user.pk,
                )
            except ValueError:  # not a number: no comparison of this experiment has it
                self.message_user(request, human.comparison_missing(result_id), messages.ERROR)
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            return redirect("admin:jobs_experiment_compare", quote(experiment.pk), scorer)
        pending = human.human_pending(experiment, scorer)
        result = pending.first()
        sides = None
        if result is not None:
            verdict = next(v for v in result.verdicts if v["name"] == scorer)
            a, b = (
                (result.candidate, result.baseline)
                if verdict["candidateIsA"]
                else (result.baseline, result.candidate)
            )
            sides = _fields(a, b)
            outcomes = (a["outcome"], b["outcome"], a.get("error"), b.get("error"))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Compare: {scorer}",
            "opts": self.model._meta,
            "experiment": experiment,
            "scorer": scorer,
            "result": result,
            "label": entity_labels(entity_ids=[result.entity_id]).get(result.entity_id, "")
            if result is not None
            else "",
            "left": pending.count(),
            "sides": sides,
            "outcomes": outcomes if result is not None else None,
        }
        return TemplateResponse(request, "admin/jobs/experiment/compare.html", context)
