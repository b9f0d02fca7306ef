from django.contrib import admin, messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html

from config.api.errors import DomainError
from jobs import services
from jobs.models import ItemStatus, Job, Run, RunItem, RunLog
from jobs.reviews.admin import reviews_url

ITEMS_SHOWN = 200
LOGS_SHOWN = 200


def progress_bar(run: Run):
    """A bar of completed (green) and failed (red) of total, kept live by progress.js."""
    done = run.completed + run.failed + run.cancelled
    percent = lambda n: 100 * n / run.total if run.total else 0  # noqa: E731
    return format_html(
        '<div class="run-progress" data-progress-url="{}" data-ended="{}">'
        '<div class="bar"><span class="ok" style="width:{}%"></span>'
        '<span class="bad" style="width:{}%"></span></div>'
        '<span class="label">{} / {} ({} failed{})</span></div>',
        reverse("admin:jobs_run_progress", args=[run.pk]),
        "true" if run.is_ended else "false",
        f"{percent(run.completed):.2f}",
        f"{percent(run.failed):.2f}",
        done,
        run.total,
        run.failed,
        f", {run.waiting} waiting" if run.waiting else "",
    )


class RecordAdmin(admin.ModelAdmin):
    """Run records are written by runs, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Run)
class RunAdmin(RecordAdmin):
    """Runs as the dashboard shows them: live progress, items, logs, cancel and retry."""

    list_display = ["id", "workflow", "status", "progress", "created_at", "completed_at"]
    list_filter = ["status", "workflow"]
    search_fields = ["id", "workflow__name"]
    list_select_related = ["workflow"]
    change_form_template = "admin/jobs/run/change_form.html"

    @admin.display(description="progress")
    def progress(self, run):
        return progress_bar(run)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<str:run_id>/progress/", view(self.progress_view), name="jobs_run_progress"),
            path("<str:run_id>/cancel/", view(self.cancel_view), name="jobs_run_cancel"),
            path("<str:run_id>/retry/", view(self.retry_view), name="jobs_run_retry"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = get_object_or_404(
            Run.objects.select_related("workflow", "workflow_version", "job"), pk=object_id
        )
        status = request.GET.get("item_status", "")
        items = RunItem.objects.filter(run=run).order_by("pk")
        if status in ItemStatus.values:
            items = items.filter(status=status)
        context = {
            "run": run,
            "progress": progress_bar(run),
            "items": items[:ITEMS_SHOWN],
            "items_shown": ITEMS_SHOWN,
            "item_status": status,
            "item_statuses": ItemStatus.values,
            "logs": RunLog.objects.filter(run=run).order_by("-pk")[:LOGS_SHOWN],
            "can_act": request.user.has_perm("jobs.change_job"),
            "reviews_url": reviews_url(run=run.pk),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, context)

    def progress_view(self, request, run_id):
        run = get_object_or_404(Run, pk=run_id)
        return JsonResponse(
            {
                "status": run.status,
                "total": run.total,
                "completed": run.completed,
                "failed": run.failed,
                "cancelled": run.cancelled,
                "waiting": run.waiting,
                "ended": run.is_ended,
            }
        )

    def _act(self, request, run_id, action):
        if request.method != "POST" or not request.user.has_perm("jobs.change_job"):
            return redirect("admin:jobs_run_change", run_id)
        try:
            run = action()
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return redirect("admin:jobs_run_change", run_id)
        return redirect("admin:jobs_run_change", run.pk)

    def cancel_view(self, request, run_id):
        def cancel():
            run = services.run_cancel(run_id=run_id, cancelled_by=request.user.get_username())
            self.message_user(request, "The run was cancelled.")
            return run

        return self._act(request, run_id, cancel)

    def retry_view(self, request, run_id):
        def retry():
            run = services.run_retry(run_id=run_id, created_by=request.user)
            self.message_user(request, f"Retrying {run.total} failed entities in run {run.pk}.")
            return run

        return self._act(request, run_id, retry)


@admin.register(Job)
class JobAdmin(RecordAdmin):
    list_display = ["id", "type", "run_link", "status", "created_at"]
    list_filter = ["run__status"]
    search_fields = ["id", "run__id"]
    list_select_related = ["run"]

    @admin.display(description="status", ordering="run__status")
    def status(self, job):
        return job.run.status

    @admin.display(description="run")
    def run_link(self, job):
        return format_html(
            '<a href="{}">{}</a>', reverse("admin:jobs_run_change", args=[job.run_id]), job.run_id
        )
