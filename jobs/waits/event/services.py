"""Sending events and matching them with the entities waiting for them.

Sending stores the events first (their own transaction), then resolves the waits parked for
their name and key. A chunk parking entities matches them, after its COMMIT, with the events
kept for them (`waits_match`). Whichever of the two comes second sees the other's committed
rows, so an event and an entity that meet at the same moment still meet; the kind's tick
matches once more what was parked lately (a worker killed between its COMMIT and the match).
Resolving is conditional on the wait still waiting, so an entity is woken once.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from config.api.ids import new_id
from jobs.engine.waits import runs_lock, waits_resolve
from jobs.waits.event.conf import event_keep_minutes
from jobs.waits.event.models import Event, EventWait
from workflows.steps.waits import Resolution

SEND_MAX = 1000


@dataclass(frozen=True)
class EventIn:
    """One event as sent: its name, key, data and the sender's id (idempotency)."""

    name: str
    key: str
    data: object = None
    sent_id: str = ""


@dataclass(frozen=True)
class Sent:
    """What came of one event sent: how many entities it woke; `duplicate` when its id was
    taken before (it woke nothing now; `matched` is what it woke then)."""

    event_id: str
    matched: int
    duplicate: bool = False


def events_send(*, events: list[EventIn], now: datetime | None = None) -> list[Sent]:
    """Store up to SEND_MAX events and wake every entity waiting for each one's name and key;
    an event that woke none is kept for EVENT_KEEP_MINUTES for the entities that reach their
    step just after. Returns what came of each, in order."""
    now = now or timezone.now()
    keep_until = now + timedelta(minutes=event_keep_minutes())
    rows = [
        Event(
            id=new_id("evt"),
            sent_id=each.sent_id,
            name=each.name,
            key=each.key,
            data=each.data,
            received_at=now,
            expires_at=keep_until,
        )
        for each in events
    ]
    with transaction.atomic():
        Event.objects.bulk_create(rows, ignore_conflicts=True)
        stored = set(
            Event.objects.filter(pk__in=[row.pk for row in rows]).values_list("pk", flat=True)
        )
    earlier = dict(
        Event.objects.filter(sent_id__in=[row.sent_id for row in rows if row.pk not in stored])
        .exclude(sent_id="")
        .values_list("sent_id", "pk")
    )
    woken = _wake([row for row in rows if row.pk in stored], now)
    results = []
    for row in rows:
        if row.pk in stored:
            results.append(Sent(row.pk, woken.get(row.pk, 0)))
        else:
            first = earlier.get(row.sent_id, "")
            matched = Event.objects.filter(pk=first).values_list("matched", flat=True).first()
            results.append(Sent(first, matched or 0, duplicate=True))
    return results


def _wake(events: list[Event], now: datetime) -> dict[str, int]:
    """Resolve every wait parked for each event's name and key (the first event of a name
    and key, when several came together), in one transaction, so the entities a bulk send
    wakes resume together; returns how many each woke, by event id."""
    first: dict[tuple[str, str], Event] = {}
    for event in events:
        first.setdefault((event.name, event.key), event)
    if not first:
        return {}
    with transaction.atomic():
        waiting = [
            entry
            for entry in EventWait.objects.filter(
                name__in={name for name, _ in first}, key__in={key for _, key in first}
            ).values_list("wait_id", "run_id", "output_field", "name", "key")
            if entry[3:] in first
        ]
        if not waiting:
            return {}
        runs_lock(run_ids=sorted({run_id for _, run_id, *_ in waiting}))
        woken = {}
        for pair, event in first.items():
            mine = [entry[:3] for entry in waiting if entry[3:] == pair]
            if not mine:
                continue
            woken[event.pk] = _resolve(event, mine, now, locked=True)
            # It woke someone: it is not kept for later arrivals (they wait for the next).
            Event.objects.filter(pk=event.pk).update(
                matched=F("matched") + woken[event.pk], expires_at=now
            )
    return woken


def waits_match(*, wait_ids: list[str], now: datetime | None = None) -> int:
    """Wake the entities of these waits (just parked) for which an event is kept: the
    newest of their name and key not expired. Returns how many woke."""
    now = now or timezone.now()
    woken = 0
    with transaction.atomic():
        waiting = list(
            EventWait.objects.filter(pk__in=wait_ids).values_list(
                "wait_id", "run_id", "output_field", "name", "key"
            )
        )
        pairs = {(name, key) for *_, name, key in waiting}
        kept: dict[tuple[str, str], Event] = {}
        candidates = Event.objects.filter(
            name__in={name for name, _ in pairs},
            key__in={key for _, key in pairs},
            expires_at__gt=now,
        ).order_by("received_at")
        for event in candidates:  # the newest of each name and key wins
            if (event.name, event.key) in pairs:
                kept[event.name, event.key] = event
        for pair, event in sorted(kept.items()):
            mine = [entry[:3] for entry in waiting if entry[3:] == pair]
            count = _resolve(event, mine, now)
            Event.objects.filter(pk=event.pk).update(matched=F("matched") + count)
            woken += count
    return woken


def _resolve(
    event: Event, waiting: list[tuple[str, str, str]], now: datetime, *, locked: bool = False
) -> int:
    """Resolve `waiting` (wait id, run id, output field) with the event; call in a
    transaction (`locked`: that has locked their runs). Each step's `outputField` gets the
    data; the step's output is `{data, eventId, timedOut}`."""
    run_ids = sorted({run_id for _, run_id, _ in waiting})
    if not locked:
        runs_lock(run_ids=run_ids)
    woken = 0
    by_field: dict[str, list[str]] = {}
    for wait_id, _, output_field in waiting:
        by_field.setdefault(output_field, []).append(wait_id)
    output = {"data": event.data, "eventId": event.pk, "timedOut": False}
    for output_field, wait_ids in by_field.items():
        woken += waits_resolve(
            wait_ids=wait_ids,
            run_ids=run_ids,
            resolution=Resolution(
                "continue",
                set={output_field: event.data} if output_field else {},
                output=output,
            ),
            now=now,
        )
        EventWait.objects.filter(pk__in=wait_ids).delete()
    return woken


def waits_time_out(*, now: datetime, limit: int = 1000) -> int:
    """Resolve the waits whose `timeoutMinutes` passed, as their `onTimeout` says."""
    timed_out = 0
    while True:
        due = list(
            EventWait.objects.filter(timeout_at__lte=now)
            .order_by("timeout_at")
            .values_list("wait_id", "run_id", "on_timeout", "name", "key")[:limit]
        )
        if not due:
            return timed_out
        with transaction.atomic():
            run_ids = sorted({run_id for _, run_id, *_ in due})
            runs_lock(run_ids=run_ids)
            for wait_id, _, on_timeout, name, key in due:
                why = f"No event {name!r} with key {key!r} came in time (timeoutMinutes)."
                resolution = {
                    "fail": Resolution("fail", error=why),
                    "stop": Resolution("stop", log=why),
                    "continue": Resolution(
                        "continue", output={"data": None, "eventId": None, "timedOut": True}
                    ),
                }[on_timeout]
                timed_out += waits_resolve(
                    wait_ids=[wait_id], run_ids=run_ids, resolution=resolution, now=now
                )
            EventWait.objects.filter(pk__in=[entry[0] for entry in due]).delete()
        if len(due) < limit:
            return timed_out


def events_prune(*, now: datetime, limit: int) -> int:
    """Delete up to `limit` events past their keep time (listed EVENT_KEEP_MINUTES after they
    stopped being matchable); returns how many (retention's pruner)."""
    cutoff = now - timedelta(minutes=event_keep_minutes())
    ids = list(
        Event.objects.filter(expires_at__lt=cutoff).order_by().values_list("pk", flat=True)[:limit]
    )
    return Event.objects.filter(pk__in=ids).delete()[0] if ids else 0
