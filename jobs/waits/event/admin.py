"""The admin's Events page: events received, newest first, with how many entities each woke."""

from django.contrib import admin
from django.db.models import Q

from config.admin_mixins import LargeListMixin
from jobs.waits.event.models import Event
from jobs.waits.event.selectors import event_names


class EventNameFilter(admin.SimpleListFilter):
    """The events' names, read a name at a time from their index (`event_names`)."""

    title = "name"
    parameter_name = "name"

    def lookups(self, request, model_admin):
        return [(name, name) for name in event_names()]

    def queryset(self, request, queryset):
        return queryset.filter(name=self.value()) if self.value() else queryset


@admin.register(Event)
class EventAdmin(LargeListMixin, admin.ModelAdmin):
    list_display = ["id", "name", "key", "matched", "received_at", "expires_at"]
    list_filter = [EventNameFilter]
    search_fields = ["=key", "=sent_id"]  # exactly: `get_search_results`
    readonly_fields = [f.name for f in Event._meta.fields]
    ordering = ["-received_at"]

    def get_search_results(self, request, queryset, search_term):
        """An event by its key or its sender's id, exactly, as the API matches them: each
        held by an index (`event_key`, `event_sent_once`). Django's `=` compares them
        upper-cased, which no index holds: a read of every event kept."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(key=term) | Q(sent_id=term)), False

    def has_add_permission(self, request) -> bool:
        return False  # events come through the API

    def has_change_permission(self, request, obj=None) -> bool:
        return False
