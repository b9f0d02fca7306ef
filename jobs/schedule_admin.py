"""The admin of schedules: beat's periodic tasks (django-celery-beat's admin, with the rows
of workflows' schedule triggers read-only) and each tick's outcome (`ScheduleFire`).

The rule: a workflow's `triggers` are the source of truth. Its PeriodicTask rows are written
from them on every save of the workflow (jobs/schedules.py), so they are shown, not edited:
change the cron, time zone or filter in the workflow's triggers, and deactivate the workflow
to stop its schedules. Other periodic tasks (the CELERY_BEAT_SCHEDULE entries, written by
beat when it starts, or tasks added by hand) stay editable as django-celery-beat makes them.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils.html import format_html
from django_celery_beat.admin import PeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from config.admin_mixins import LargeListMixin
from jobs.models import ScheduleFire

MANAGED = "workflow:"  # the prefix of the names jobs.schedules gives its rows
MANAGED_HELP = (
    "Kept in step with the workflow's schedule trigger: edit the cron, time zone or filter "
    "in the workflow's triggers (admin or API), and deactivate the workflow to stop it. "
    "Changes made here would be overwritten, so this task is read-only."
)


def _managed(task: PeriodicTask | None) -> bool:
    return task is not None and task.name.startswith(MANAGED)


def _workflow_id(task: PeriodicTask) -> str:
    return task.name.removeprefix(MANAGED).split(":", 1)[0]


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class ScheduleAwarePeriodicTaskAdmin(PeriodicTaskAdmin):
    """django-celery-beat's admin; workflows' schedule rows are read-only and link to their
    workflow, and the bulk actions leave them alone."""

    list_display = ["name", "workflow_link", "enabled", "scheduler", "last_run_at"]

    @admin.display(description="workflow")
    def workflow_link(self, task):
        if not _managed(task):
            return ""
        workflow_id = _workflow_id(task)
        url = reverse("admin:workflows_workflow_change", args=[quote(workflow_id)])
        return format_html('<a href="{}">{}</a>', url, workflow_id)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if not _managed(obj):
            return fieldsets
        # Read-only, the form's choice of a registered task name reads "None": the task's
        # name is shown by its own field.
        return [
            (name, {**options, "fields": [f for f in options["fields"] if f != "regtask"]})
            for name, options in fieldsets
        ]

    def has_change_permission(self, request, obj=None):
        return not _managed(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not _managed(obj) and super().has_delete_permission(request, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        task = self.get_object(request, object_id)
        if _managed(task):
            self.message_user(request, MANAGED_HELP, messages.INFO)
        return super().change_view(request, object_id, form_url, extra_context)

    def enable_tasks(self, request, queryset):
        return super().enable_tasks(request, queryset.exclude(name__startswith=MANAGED))

    def disable_tasks(self, request, queryset):
        return super().disable_tasks(request, queryset.exclude(name__startswith=MANAGED))

    def toggle_tasks(self, request, queryset):
        return super().toggle_tasks(request, queryset.exclude(name__startswith=MANAGED))

    def run_tasks(self, request, queryset):
        """Not a workflow's schedule: its task fires the tick it is due at, so run by hand it
        started a run for the schedule's previous tick (or nothing, that tick fired)."""
        managed = queryset.filter(name__startswith=MANAGED).count()
        if managed:
            self.message_user(
                request,
                f"{managed} workflow schedule(s) left alone: a schedule fires at its "
                "ticks. To run a workflow now, use Run on the workflow's page or the API.",
                messages.WARNING,
            )
        others = queryset.exclude(name__startswith=MANAGED)
        if others.exists():
            return super().run_tasks(request, others)
        return None

    enable_tasks.short_description = PeriodicTaskAdmin.enable_tasks.short_description
    disable_tasks.short_description = PeriodicTaskAdmin.disable_tasks.short_description
    toggle_tasks.short_description = PeriodicTaskAdmin.toggle_tasks.short_description
    run_tasks.short_description = PeriodicTaskAdmin.run_tasks.short_description


@admin.register(ScheduleFire)
class ScheduleFireAdmin(LargeListMixin, admin.ModelAdmin):
    """Each tick of a schedule trigger: the run it started, or why it started none."""

    list_display = ["tick", "workflow", "trigger_index", "cron", "outcome", "run_link", "message"]
    list_filter = ["outcome", "workflow"]
    list_select_related = ["workflow"]
    search_fields = ["workflow__id", "workflow__name", "run__id"]

    @admin.display(description="run")
    def run_link(self, fire):
        if fire.run_id is None:
            return ""
        url = reverse("admin:jobs_run_change", args=[quote(fire.run_id)])
        return format_html('<a href="{}">{}</a>', url, fire.run_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
