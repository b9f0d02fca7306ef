"""The admin of records the engine writes (runs, jobs, experiments): read, never edited."""

from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    """Run records are written by runs, never edited by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
