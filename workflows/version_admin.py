"""The admin's side of versions and releases: the workflow page lists its newest versions,
each with what it changed since the one before and a button that makes it live (publishing a
draft, or rolling back), through the same services as the API; the versions' own pages list
them all, a page at a time."""

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, OuterRef, Subquery
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from config.api.errors import Conflict, NotFound
from config.digits import whole_number
from workflows import services
from workflows.diff import steps_diff
from workflows.models import WorkflowVersion
from workflows.serializers import steps_shown

# A value in a diff line, cut to what a line shows.
SHOWN_CHARS = 300
# The workflow page lists its newest versions (each a row with its diff and its whole steps),
# as an entity's page shows its newest revisions; the versions' own list has the rest, a
# page of as many at a time.
VERSIONS_SHOWN = 50


def _value(value) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def _with_steps_before(versions):
    """Each version with the steps of the one before it (numbers follow each other from 1),
    in the same query (not one per row)."""
    before = WorkflowVersion.objects.filter(
        workflow_id=OuterRef("workflow_id"), number=OuterRef("number") - 1
    ).values("steps")
    return versions.select_related("workflow", "created_by").annotate(steps_before=Subquery(before))


class VersionColumns:
    """What the workflow page's versions and the versions' own list show of each."""

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
        # CSRF token, to the publish view, which reads nothing else of it but the button's
        # value: the live version the page showed (a version published since is not replaced).
        label = "Roll back to this" if version.number < version.workflow.version else "Publish"
        return format_html(
            '<button type="submit" class="button" formaction="{}" formnovalidate '
            'name="expected_live" value="{}">{}</button>',
            url,
            version.workflow.version,
            label,
        )


class WorkflowVersionInline(VersionColumns, admin.TabularInline):
    """The workflow page's newest VERSIONS_SHOWN versions (its template links to the rest)."""

    model = WorkflowVersion
    fields = ["number", "live", "note", "created_by", "created_at", "changes", "publish"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-number"]
    template = "admin/workflows/workflow/versions_inline.html"

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        newest = (
            super()
            .get_queryset(request)
            .filter(number__gt=F("workflow__latest_version") - VERSIONS_SHOWN)
        )
        return _with_steps_before(newest)


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(VersionColumns, admin.ModelAdmin):
    """Every version of the workflows, a page at a time; the workflow page links here with
    `?workflow=<id>`. Read-only: versions are made by editing a workflow's steps."""

    list_display = [
        "number",
        "workflow",
        "live",
        "note",
        "created_by",
        "created_at",
        "changes",
        "publish",
    ]
    list_display_links = None
    list_per_page = VERSIONS_SHOWN
    ordering = ["workflow", "-number"]
    search_fields = ["note"]

    def get_queryset(self, request):
        return _with_steps_before(super().get_queryset(request))

    def get_model_perms(self, request):
        # Not a table of the index: versions are reached from their workflow's page.
        return {}

    # Versions belong to their workflow: whoever may view workflows may read them.
    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("workflows.view_workflow")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # they go with their workflow (`WorkflowAdmin.get_deleted_objects`)


def version_publish_view(model_admin, request, object_id: str, number: int):
    """POST: make version `number` of the workflow live, as the API's publish does, if the
    live version is still the one the page showed (`expected_live`, when the form sends it)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    workflow = model_admin.get_object(request, object_id)
    if workflow is None or not model_admin.has_change_permission(request, workflow):
        raise PermissionDenied
    try:
        services.version_publish(
            workflow_id=workflow.pk,
            number=number,
            expected_live=whole_number(request.POST.get("expected_live", "")),
        )
    except (NotFound, Conflict) as exc:
        model_admin.message_user(request, exc.message, messages.ERROR)
    else:
        model_admin.message_user(
            request, f"Version {number} is live: runs, triggers and schedules execute it."
        )
    return HttpResponseRedirect(reverse("admin:workflows_workflow_change", args=[workflow.pk]))
