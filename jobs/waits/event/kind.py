"""The `event` kind of wait: an entity waits for an event from outside (`services`)."""

from datetime import datetime, timedelta
from functools import partial

from django.db import transaction
from django.utils import timezone
from rest_framework.serializers import CharField, Field

from config.api.fields import TimestampField
from jobs.waits.base import Parked, WaitKind
from jobs.waits.event.models import EventWait
from jobs.waits.event.services import (
    events_prune,
    waits_match,
    waits_match_lately,
    waits_time_out,
)
from workflows.steps.wait_for_event import EventRequest
from workflows.usage import Usage


class EventWaitKind(WaitKind):
    """Woken by an event with its name and key; times out as its step says."""

    request_type = EventRequest
    urls = "jobs.waits.event.urls"
    admin = "jobs.waits.event.admin"
    entity_facts = ("key",)  # rendered from the entity (`{{ entity.sku }}`)

    def create(self, parked: list[Parked]) -> None:
        now = timezone.now()
        EventWait.objects.bulk_create(
            [
                EventWait(
                    wait_id=entry.wait.pk,
                    run_id=entry.wait.run_id,
                    name=entry.request.event,
                    key=entry.request.key,
                    output_field=entry.request.output_field,
                    on_timeout=entry.request.on_timeout,
                    timeout_at=(
                        now + timedelta(minutes=entry.request.timeout_minutes)
                        if entry.request.timeout_minutes
                        else None
                    ),
                    created_at=now,
                )
                for entry in parked
            ],
            batch_size=1000,
        )
        # Events kept for them are matched once these waits are committed (`services`).
        wait_ids = [entry.wait.pk for entry in parked]
        transaction.on_commit(partial(waits_match, wait_ids=wait_ids))

    def tick(self, *, now: datetime) -> int:
        return waits_match_lately(now=now) + waits_time_out(now=now)

    def described_fields(self) -> dict[str, Field]:
        return {
            "event": CharField(read_only=True, help_text="The event's name."),
            "key": CharField(
                read_only=True,
                allow_null=True,
                help_text="The key it waits for (null to a reader who may not read entities: "
                "it is rendered from the entity's data).",
            ),
            "timeoutAt": TimestampField(
                allow_null=True, help_text="When it times out (ms), or null without a timeout."
            ),
        }

    def describe(self, wait_ids: list[str]) -> dict[str, dict]:
        rows = EventWait.objects.filter(pk__in=wait_ids).values_list(
            "pk", "name", "key", "timeout_at"
        )
        return {
            pk: {
                "event": name,
                "key": key,
                "timeoutAt": timeout_at,
            }
            for pk, name, key, timeout_at in rows
        }

    def prune(self, *, now: datetime, limit: int) -> int:
        return events_prune(now=now, limit=limit)

    def cancel(self, *, run_id: str, wait_ids: list[str]) -> dict[str, Usage]:
        EventWait.objects.filter(pk__in=wait_ids).delete()
        return {}
