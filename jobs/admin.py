"""The admin of run records: a run's page (progress, items, logs, waits, cancel, retry, revert)
and the jobs' list. Running and testing workflows from the admin are `start_admin`'s; each kind
of wait's pages are its own (`jobs/waits/<kind>/admin.py`, loaded below)."""

from datetime import datetime
from importlib import import_module

from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import localtime

from config.api.errors import DomainError
from config.api.templatetags.admin_values import usd
from entities.run_changes import run_changed_counts, run_changed_during_count
from jobs import (
    retries,
    reverts,
    schedule_admin,  # noqa: F401  (registers the schedules' admin)
    start_admin,  # noqa: F401  (adds running and testing to the workflow and entity admins)
)
from jobs.cancel import run_cancel
from jobs.engine.waits import waits_describe
from jobs.experiments import admin as experiments_admin  # noqa: F401 (registers its admin)
from jobs.experiments.models import WORKERS_ONLY
from jobs.models import (
    ItemStatus,
    Job,
    Run,
    RunItem,
    RunLog,
    TriggerType,
)
from jobs.record_admin import LOGS_SHOWN, TEXT_SHOWN, RecordAdmin
from jobs.waits.kinds import kinds

ITEMS_SHOWN = 200
# The revert page counts what a run changed, and what of it changed since, among the first
# this many entities: two index probes each, so a run of a million is a page of a second
# rather than of a minute (the revert itself goes through all, reporting what it skipped).
REVERT_PAGE_COUNTS = 20_000
# The API's permissions for a run's actions (jobs/views.py): cancelling a run changes its job;
# retrying or reverting one starts a run.
CANCEL_PERMISSION = "jobs.change_job"
START_PERMISSION = "jobs.add_run"


def _shown(value) -> str:
    """A fact of what an entity waits for (`WaitKind.describe`) as its run's page shows it: a
    time as a date in the admin's zone and format (the API serves it in ms)."""
    if isinstance(value, datetime):
        return date_format(localtime(value), "DATETIME_FORMAT")
    return str(value)


def progress_bar(run: Run):
    """A bar of completed (green) and failed (red) of total, kept live by progress.js."""
    done = run.completed + run.failed + run.cancelled
    percent = lambda n: 100 * n / run.total if run.total else 0  # noqa: E731
    return format_html(
        '<div class="run-progress" data-progress-url="{}" data-ended="{}">'
        '<div class="bar"><span class="ok" style="width:{}%"></span>'
        '<span class="bad" style="width:{}%"></span></div>'
        '<span class="label">{} / {} ({} failed{}{})</span></div>',
        reverse("admin:jobs_run_progress", args=[quote(run.pk)]),
        "true" if run.is_ended else "false",
        f"{percent(run.completed):.2f}",
        f"{percent(run.failed):.2f}",
        done,
        "…" if run.total is None else run.total,  # a run over a filter making its items
        run.failed,
        f", {run.skipped} skipped" if run.skipped else "",
        f", {run.waiting} waiting" if run.waiting else "",
    )


class TriggerTypeFilter(admin.SimpleListFilter):
    """What started the run (`trigger.type`)."""

    title = "trigger"
    parameter_name = "trigger"

    def lookups(self, request, model_admin):
        return TriggerType.choices

    def queryset(self, request, queryset):
        if self.value() in TriggerType.values:
            return queryset.filter(trigger__type=self.value())
        return queryset


@admin.register(Run)
class RunAdmin(RecordAdmin):
    """Runs as the dashboard shows them: live progress, items, logs, cancel and retry."""

    list_display = [
        "id",
        "workflow",
        "status",
        "progress",
        "trigger_type",
        "tokens",
        "cost",
        "created_at",
        "completed_at",
    ]
    list_filter = ["status", TriggerTypeFilter, "workflow"]

    @admin.display(description="trigger")
    def trigger_type(self, run):
        return (run.trigger or {}).get("type", "")

    search_fields = ["id", "workflow__name"]
    list_select_related = ["workflow"]
    change_form_template = "admin/jobs/run/change_form.html"

    @admin.display(description="progress")
    def progress(self, run):
        return progress_bar(run)

    @admin.display(description="tokens (in / out)")
    def tokens(self, run):
        return f"{run.usage.input_tokens:,} / {run.usage.output_tokens:,}"

    @admin.display(description="cost")
    def cost(self, run):
        return usd(None if run.usage.unpriced_calls else run.usage.cost_nano_usd)

    # Links to these views carry the admin's quoted primary key (`run_01…` is `run_5F01…`), as
    # Django's own views do, so each view unquotes it before looking the run up.
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<str:run_id>/progress/", view(self.progress_view), name="jobs_run_progress"),
            path("<str:run_id>/cancel/", view(self.cancel_view), name="jobs_run_cancel"),
            path("<str:run_id>/retry/", view(self.retry_view), name="jobs_run_retry"),
            path("<str:run_id>/revert/", view(self.revert_view), name="jobs_run_revert"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = get_object_or_404(
            Run.objects.select_related("workflow", "workflow_version", "job"),
            pk=unquote(object_id),
        )
        status = request.GET.get("item_status", "")
        items = RunItem.objects.filter(run=run).order_by("pk")
        if status in ItemStatus.values:
            items = items.filter(status=status)
        shown = list(items[:ITEMS_SHOWN])
        waiting_for: dict[int, str] = {}
        entity_data = request.user.has_perm("entities.view_entity")
        for item_id, facts in waits_describe(items=shown, entity_data=entity_data).items():
            described = ", ".join(
                f"{key} {_shown(value)}" for key, value in facts.items() if key != "kind" and value
            )
            waiting_for[item_id] = f"{facts['kind']}: {described}" if described else facts["kind"]
        for item in shown:
            item.waiting_for = waiting_for.get(item.pk, "")
        parts = kinds.run_page_parts(run)
        reverted = reverts.revert_of(run)
        context = {
            "run": run,
            "progress": progress_bar(run),
            "items": shown,
            "items_shown": ITEMS_SHOWN,
            "logs_shown": LOGS_SHOWN,
            "text_shown": TEXT_SHOWN,
            "item_status": status,
            "item_statuses": ItemStatus.values,
            "logs": RunLog.objects.filter(run=run).order_by("-pk")[:LOGS_SHOWN],
            # As the API's: cancelling takes `jobs.change_job`; retrying and reverting start a
            # run, and take `jobs.add_run`.
            "can_cancel": request.user.has_perm(CANCEL_PERMISSION),
            "can_start": request.user.has_perm(START_PERMISSION),
            # A revert says which run it reverts; it is not retried (`jobs.retries`): its
            # retry would run the workflow's steps. Reverting that run again is the way.
            "reverted": reverted,
            # Pruned by retention (RUNS_KEEP_DAYS): named, not linked to a page that is gone.
            "reverted_kept": reverted is not None and Run.objects.filter(pk=reverted).exists(),
            "revert_forced": reverts.revert_forced(run),
            # Each kind of wait's part (`WaitKind.run_page`): a review's link, the batches.
            "wait_parts": parts,
            "waiting_for": next((part.waiting_for for part in parts if part.waiting_for), ""),
            "wait_links": [link for part in parts for link in part.links],
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def _viewed_run(self, request, run_id, queryset=Run.objects) -> Run:
        """The run of a custom view, for whom may view runs (the admin checks its own pages;
        these views are its to check)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(queryset, pk=unquote(run_id))

    def progress_view(self, request, run_id):
        run = self._viewed_run(request, run_id)
        return JsonResponse(
            {
                "status": run.status,
                "total": run.total,
                "completed": run.completed,
                "failed": run.failed,
                "cancelled": run.cancelled,
                "skipped": run.skipped,
                "waiting": run.waiting,
                "ended": run.is_ended,
            }
        )

    def _act(self, request, run_id, action, permission: str):
        run = self._viewed_run(request, run_id)
        if request.method != "POST" or not request.user.has_perm(permission):
            return redirect("admin:jobs_run_change", quote(run.pk))
        try:
            run = action(run.pk)
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
        return redirect("admin:jobs_run_change", quote(run.pk))

    def cancel_view(self, request, run_id):
        def cancel(pk):
            run = run_cancel(run_id=pk, cancelled_by=request.user.get_username())
            self.message_user(
                request,
                "The run was cancelled."
                if run.is_ended
                else "Cancel asked: no new step starts; the run is cancelled once its "
                "entities are ended, in the background.",
            )
            return run

        return self._act(request, run_id, cancel, CANCEL_PERMISSION)

    def retry_view(self, request, run_id):
        def retry(pk):
            run = retries.run_retry(run_id=pk, created_by=request.user)
            count = run.items_limit if run.total is None else run.total  # made in batches
            self.message_user(request, f"Retrying {count} failed entities in run {run.pk}.")
            return run

        return self._act(request, run_id, retry, START_PERMISSION)

    def revert_view(self, request, run_id):
        """ "Revert this run": a confirmation page saying how many entities the run changed
        and how many were changed since (or during it, between two of its commits); POST
        starts the revert (forced or not), as the API's does, and shows the new run."""
        run = self._viewed_run(request, run_id, Run.objects.select_related("workflow"))
        if not request.user.has_perm(START_PERMISSION):
            raise PermissionDenied
        if request.method == "POST":
            try:
                revert = reverts.run_revert(
                    run_id=run.pk, force=bool(request.POST.get("force")), created_by=request.user
                )
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return redirect("admin:jobs_run_change", quote(run.pk))
            self.message_user(request, f"Reverting run {run.pk} in run {revert.pk}.")
            return redirect("admin:jobs_run_change", quote(revert.pk))
        changed, changed_since = run_changed_counts(run.pk, limit=REVERT_PAGE_COUNTS)
        changed_during = run_changed_during_count(run.pk, limit=REVERT_PAGE_COUNTS)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Revert run {run.pk}",
            "opts": self.model._meta,
            "run": run,
            "changed": changed,
            "changed_since": changed_since,
            "changed_during": changed_during,
            "counted_part": changed >= REVERT_PAGE_COUNTS,
        }
        return TemplateResponse(request, "admin/jobs/run/revert.html", context)


@admin.register(Job)
class JobAdmin(RecordAdmin):
    list_display = ["id", "type", "run_link", "status", "created_at"]
    list_filter = ["type", "run__status"]
    search_fields = ["id", "run__id", "experiment__id"]
    list_select_related = ["run", "experiment"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer(*(f"experiment__{f}" for f in WORKERS_ONLY))

    @admin.display(description="status", ordering="run__status")
    def status(self, job):
        return (job.run or job.experiment).status

    @admin.display(description="run or experiment")
    def run_link(self, job):
        if job.run_id is None:  # an experiment's job
            page, pk = "admin:jobs_experiment_change", job.experiment_id
        else:
            page, pk = "admin:jobs_run_change", job.run_id
        return format_html('<a href="{}">{}</a>', reverse(page, args=[quote(pk)]), pk)


for kind in kinds:  # every kind of wait's admin pages
    if kind.admin:
        import_module(kind.admin)
