"""Running, testing and trying workflows from the admin: "Run on entities…", "Test on one
entity" and "Try a new version on a sample" (jobs/experiments/start_admin.py) on a workflow's
page, the "Run workflow…" action on the entities' list. Running is the engine's, so this app
adds them to the admins of the layers below (their pages and URL names stay where they were);
`jobs/admin.py` loads this module."""

import json
from functools import partial

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path

from config.api.errors import DomainError
from config.time_limit import TooSlow
from entities.admin import EntityAdmin
from entities.models import Entity
from jobs import services
from jobs.engine.dry_run import workflow_test
from jobs.entity_search import entity_search
from jobs.experiments.start_admin import PERMISSIONS as EXPERIMENT_PERMISSIONS
from jobs.experiments.start_admin import experiment_start_view
from jobs.filter_runs import run_start_over_filter
from workflows.admin import WorkflowAdmin
from workflows.models import Workflow

# What each page asks of a user, as the API's run and test do (a test shows the entity's
# data as the steps leave it); an experiment's, as its API's create does.
RUN_PERMISSIONS = ["jobs.add_run", "workflows.view_workflow"]
TEST_PERMISSIONS = ["jobs.add_run", "entities.view_entity", "workflows.view_workflow"]


class WorkflowRunAdmin(WorkflowAdmin):
    """The workflow admin, with its "Run on entities…", "Test on one entity" and "Try a new
    version on a sample" pages."""

    # Links to these views carry the admin's quoted primary key (`wf_01…` is `wf_5F01…`), as
    # Django's own views do, so each view unquotes it before looking the workflow up.
    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<str:workflow_id>/run/", view(self.run_view), name="workflows_workflow_run"),
            path("<str:workflow_id>/test/", view(self.test_view), name="workflows_workflow_test"),
            path(
                "<str:workflow_id>/experiment/",
                view(partial(experiment_start_view, self)),
                name="workflows_workflow_experiment",
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # The page links only the forms its reader may use (the others answer 403).
        user = request.user
        context = {
            "can_run": user.has_perms(RUN_PERMISSIONS),
            "can_test": user.has_perms(TEST_PERMISSIONS),
            "can_experiment": user.has_perms(EXPERIMENT_PERMISSIONS),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def _page(self, request, workflow, title, **extra):
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "workflow": workflow,
            "opts": self.model._meta,
            **extra,
        }

    def run_view(self, request, workflow_id):
        """Pick entities of the workflow's type and start a run, exactly as the API does."""
        workflow = get_object_or_404(Workflow, pk=unquote(workflow_id))
        # As `POST /workflows/:id/run` asks: the workflow's reader who may start runs.
        if not request.user.has_perms(RUN_PERMISSIONS):
            raise PermissionDenied
        by_data = request.user.has_perm("entities.view_entity")
        if request.method == "POST":
            ids = request.POST.getlist("entity_ids")
            if request.POST.get("all"):  # a run over a filter: no ids through memory
                return start_run_from_admin(self, request, workflow, None)
            if request.POST.get("matches"):  # every match of the search, by id
                found = entity_search(request.POST, workflow.entity_type_id, by_data=by_data)
                try:
                    ids = found.ids(settings.RUN_MAX_IDS + 1)
                except TooSlow:
                    found.too_slow = True
                if found.too_slow:
                    self.message_user(request, found.too_slow_message, messages.ERROR)
                    return redirect(request.path)
            return start_run_from_admin(self, request, workflow, ids)
        found = entity_search(request.GET, workflow.entity_type_id, by_data=by_data)
        return TemplateResponse(
            request,
            "admin/workflows/workflow/run.html",
            self._page(
                request,
                workflow,
                f"Run {workflow.name}",
                search=found,
                statuses=Entity.Status.choices,
                # Unsearched, the matches are the type's entities: counted once, not twice.
                total=found.count
                if not found.filtered
                else Entity.objects.filter(entity_type_id=workflow.entity_type_id).count(),
                show_data=by_data,
            ),
        )

    def test_view(self, request, workflow_id):
        """Run the workflow on one entity synchronously; nothing is committed or sent."""
        workflow = get_object_or_404(Workflow, pk=unquote(workflow_id))
        if not request.user.has_perms(TEST_PERMISSIONS):
            raise PermissionDenied
        found = entity_search(request.GET, workflow.entity_type_id, by_data=True)
        result = None
        if request.method == "POST":
            try:
                result = workflow_test(workflow=workflow, entity_id=request.POST.get("entity_id"))
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        return TemplateResponse(
            request,
            "admin/workflows/workflow/test.html",
            self._page(
                request,
                workflow,
                f"Test {workflow.name}",
                search=found,
                statuses=Entity.Status.choices,
                result=result,
                result_json=json.dumps(result, indent=2) if result else "",
            ),
        )


class EntityRunAdmin(EntityAdmin):
    """The entity admin, with the "Run workflow…" action."""

    actions = ["run_workflow"]

    @admin.action(description="Run workflow…")
    def run_workflow(self, request, queryset):
        """Pick a workflow of the entities' type, then start a run as the API does."""
        if not request.user.has_perm("jobs.add_run"):
            raise PermissionDenied
        ids = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
        # The ids posted are what runs (with "Select all" the page's ticks, not `queryset`,
        # every entity of the list, whose types would be read into memory to check them).
        type_ids = set(
            Entity.objects.filter(pk__in=ids).values_list("entity_type_id", flat=True).distinct()
        )
        if len(type_ids) != 1:
            self.message_user(request, "Select entities of one entity type.", messages.ERROR)
            return None
        workflows = Workflow.objects.filter(entity_type_id=type_ids.pop()).exclude(
            status=Workflow.Status.ARCHIVED
        )
        if request.POST.get("workflow"):
            workflow = workflows.filter(pk=request.POST["workflow"]).first()
            if workflow is None:
                self.message_user(request, "Pick a workflow of this entity type.", messages.ERROR)
                return None
            return start_run_from_admin(self, request, workflow, ids)
        return TemplateResponse(
            request,
            "admin/entities/entity/run_workflow.html",
            {
                **self.admin_site.each_context(request),
                "title": "Run a workflow on the selected entities",
                "opts": self.model._meta,
                "workflows": workflows,
                "ids": ids,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


def start_run_from_admin(model_admin, request, workflow, entity_ids):
    """Start a run as `POST /workflows/:id/run` would, and go to its progress page; over
    every entity of the type when `entity_ids` is None."""
    try:
        if entity_ids is None:
            run = run_start_over_filter(
                workflow_id=workflow.pk, entity_filter={}, created_by=request.user
            )
        else:
            run = services.run_start(
                workflow_id=workflow.pk, entity_ids=entity_ids, created_by=request.user
            )
    except DomainError as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
        return redirect("admin:workflows_workflow_run", quote(workflow.pk))
    count = "all matching" if run.total is None else run.total
    model_admin.message_user(request, f"Started run {run.pk} on {count} entities.")
    return redirect("admin:jobs_run_change", quote(run.pk))


admin.site.unregister(Workflow)
admin.site.register(Workflow, WorkflowRunAdmin)
admin.site.unregister(Entity)
admin.site.register(Entity, EntityRunAdmin)
