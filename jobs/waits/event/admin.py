"""The admin's Events page: events received, newest first, with how many entities each woke."""

from django.contrib import admin

from jobs.waits.event.models import Event


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "key", "matched", "received_at", "expires_at"]
    list_filter = ["name"]
    search_fields = ["=key", "=sent_id"]
    readonly_fields = [f.name for f in Event._meta.fields]
    ordering = ["-received_at"]
    # A filtered page counts its matches only, not every event again for "(N total)".
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False  # events come through the API

    def has_change_permission(self, request, obj=None) -> bool:
        return False
