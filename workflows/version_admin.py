"""The admin's side of versions and releases: the workflow page lists its versions, each
with what it changed since the one before and a button that makes it live (publishing a draft,
or rolling back), through the same services as the API."""

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, Window
from django.db.models.functions import Lag
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from config.api.errors import NotFound
from workflows import services
from workflows.diff import steps_diff
from workflows.models import WorkflowVersion
from workflows.serializers import steps_shown

# A value in a diff line, cut to what a line shows.
SHOWN_CHARS = 300


def _value(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


class WorkflowVersionInline(admin.TabularInline):
    model = WorkflowVersion
    fields = ["number", "live", "note", "created_by", "created_at", "changes", "publish"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-number"]

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        # Each version with the steps of the one before it, in the same query (not one per row).
        before = Window(Lag("steps"), partition_by=[F("workflow_id")], order_by=F("number").asc())
        return (
            super()
            .get_queryset(request)
            .select_related("workflow", "created_by")
            .annotate(steps_before=before)
        )

    @admin.display(boolean=True)
    def live(self, version) -> bool:
        return version.number == version.workflow.version

    @admin.display(description="changes since the version before")
    def changes(self, version):
        changes = steps_diff(version.steps_before or [], version.steps)
        if not changes:
            return "No change of the steps."
        lines = format_html_join(
            "",
            "<li><strong>{}</strong> {}{}</li>",
            (
                (
                    change.step_id,
                    change.change,
                    format_html(
                        "<ul>{}</ul>",
                        format_html_join(
                            "",
                            '<li><code>{}</code>: <del class="diff-before">{}</del> → '
                            '<ins class="diff-after">{}</ins></li>',
                            (
                                (field.path, _value(field.before), _value(field.after))
                                for field in change.fields
                            ),
                        ),
                    )
                    if change.fields
                    else "",
                )
                for change in changes
            ),
        )
        steps = json.dumps(steps_shown(version.steps), indent=2, ensure_ascii=False)
        return format_html(
            "<ul>{}</ul><details><summary>steps</summary><pre>{}</pre></details>", lines, steps
        )

    @admin.display(description="")
    def publish(self, version):
        if version.number == version.workflow.version:
            return "live"
        url = reverse(
            "admin:workflows_workflow_publish", args=[version.workflow_id, version.number]
        )
        # A button of the change form (a form may not hold another) that posts it, with its
        # CSRF token, to the publish view, which reads nothing else of it.
        label = "Roll back to this" if version.number < version.workflow.version else "Publish"
        return format_html(
            '<button type="submit" class="button" formaction="{}" formnovalidate '
            'name="publish" value="{}">{}</button>',
            url,
            version.number,
            label,
        )


def version_publish_view(model_admin, request, object_id: str, number: int):
    """POST: make version `number` of the workflow live, as the API's publish does."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    workflow = model_admin.get_object(request, object_id)
    if workflow is None or not model_admin.has_change_permission(request, workflow):
        raise PermissionDenied
    try:
        services.version_publish(workflow_id=workflow.pk, number=number)
    except NotFound as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
    else:
        model_admin.message_user(
            request, f"Version {number} is live: runs, triggers and schedules execute it."
        )
    return HttpResponseRedirect(reverse("admin:workflows_workflow_change", args=[workflow.pk]))
