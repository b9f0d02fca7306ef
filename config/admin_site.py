"""The admin as staff meet it: titled "Workflows", the product's apps first (workflows, runs and
reviews, entities), the libraries' tables nobody edits left out, no "View site" (the site is an
API, its root a 404)."""

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig

# The apps' order on the index; apps not named follow, the libraries' last.
APP_ORDER = ["workflows", "jobs", "entities", "api", "auth"]
LIBRARY_APPS = {"django_celery_beat", "django_celery_results"}
# Within an app, these models first, in this order; the others follow by name.
MODEL_ORDER = ["Workflow", "Run", "Review", "Entity", "EntityType"]


class WorkflowsAdminSite(admin.AdminSite):
    site_header = "Workflows"
    site_title = "Workflows"
    index_title = "Workflows"
    site_url = None

    def get_app_list(self, request, app_label=None):
        apps = super().get_app_list(request, app_label)

        def rank(app):
            label = app["app_label"]
            if label in APP_ORDER:
                return (0, APP_ORDER.index(label))
            return (2 if label in LIBRARY_APPS else 1, 0)

        for app in apps:
            app["models"].sort(
                key=lambda model: (
                    MODEL_ORDER.index(model["object_name"])
                    if model["object_name"] in MODEL_ORDER
                    else len(MODEL_ORDER)
                )
            )
        return sorted(apps, key=rank)


class WorkflowsAdminConfig(AdminConfig):
    default_site = "config.admin_site.WorkflowsAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscovers every app's admin module
        _unregister_library_tables(self)


def _unregister_library_tables(_config) -> None:
    """Celery's stored task results and beat's clocked, solar and interval schedules are
    written by the libraries (or unused: workflows' schedules are crontabs) and edited by
    nobody; their admin pages only stood above the product's."""
    from django_celery_beat.models import ClockedSchedule, IntervalSchedule, SolarSchedule
    from django_celery_results.models import GroupResult, TaskResult

    for model in (TaskResult, GroupResult, ClockedSchedule, SolarSchedule, IntervalSchedule):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
