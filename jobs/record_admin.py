"""The admin of records the engine writes (runs, jobs, experiments): read, never edited."""

from django.contrib import admin

from config.admin_mixins import LargeListMixin

# A record's page shows its newest log lines (templates/admin/jobs/log.html), each message
# (and a run's item errors) cut to TEXT_SHOWN: one may quote a large value (a rule broken by
# a long field); the API's lists have them whole.
LOGS_SHOWN = 200
TEXT_SHOWN = 1000


class RecordAdmin(LargeListMixin, admin.ModelAdmin):
    """Run records are written by runs, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
