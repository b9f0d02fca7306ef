"""Sending events and matching them with the entities waiting for them.

Sending stores the events first (their own transaction), then resolves the waits parked for
their name and key. A chunk parking entities matches them, after its COMMIT, with the events
kept for them (`waits_match`). Whichever of the two comes second sees the other's committed
rows, so an event and an entity that meet at the same moment still meet. Storing and waking
are two transactions for that reason (in one, an entity parked while the send was under way
would see neither the uncommitted event nor be seen by it), so a send can die between them
(a deadlock, gunicorn's timeout): its events are stored and kept, but woke no one. Two things
mend that: the sender's retry (the same `id`) wakes whoever waits for the first event if it
is still kept, and the kind's tick matches the events kept that came lately, as it matches
the entities parked lately (a worker killed between its COMMIT and the match): lately is
since the last tick that finished (`EventRecheck`), less RECHECK for the clocks of the
machines and the sends under way, and at most the events' keep time. A kept event
may wake whoever waits for it at any time, so neither wakes anyone twice; resolving is
conditional on the wait still waiting, so an entity is woken once.

Waits are resolved in one order whoever resolves them: events by name and key, then output
field, their runs' rows locked once, in id order (`runs_lock`, `waits_resolve_sets`), so
bulk sends naming the same runs in other orders do not deadlock.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, Exists, ExpressionWrapper, F, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from config.api.ids import new_id
from jobs.engine.waits import runs_lock, waits_resolve_each, waits_resolve_sets
from jobs.models import RunStatus
from jobs.waits.event.conf import event_keep_minutes
from jobs.waits.event.models import Event, EventRecheck, EventWait
from workflows.steps.waits import Resolution

SEND_MAX = 1000

# The tick matches again the events received and the waits parked this long before the last
# tick that finished: the wake after a send's COMMIT, or the match after a chunk's, may have
# died with its process, and the machines' clocks differ.
RECHECK = timedelta(minutes=2)
RECHECK_MAX = 10_000  # waits per tick; the next tick takes the rest


@dataclass(frozen=True)
class EventIn:
    """One event as sent: its name, key, data and the sender's id (idempotency)."""

    name: str
    key: str
    data: object = None
    sent_id: str = ""


@dataclass(frozen=True)
class Sent:
    """What came of one event sent: `matched`, how many entities it woke; `duplicate` when
    its id was taken before (`event_id` and `matched` are the first one's); `woken`, how
    many this send woke (for a duplicate, some only if the first was still kept)."""

    event_id: str
    matched: int
    duplicate: bool = False
    woken: int = 0


def events_send(*, events: list[EventIn], now: datetime | None = None) -> list[Sent]:
    """Store up to SEND_MAX events and wake every entity waiting for each one's name and key;
    an event that woke none is kept for EVENT_KEEP_MINUTES for the entities that reach their
    step just after. An event whose id was sent before is not stored again; if that first
    one is still kept, the entities waiting for it are woken with it (the send that stored
    it may have died before waking them). Returns what came of each, in order."""
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
    with transaction.atomic():  # committed before the waits are read: see the module's doc
        Event.objects.bulk_create(rows, ignore_conflicts=True)
        stored = set(
            Event.objects.filter(pk__in=[row.pk for row in rows]).values_list("pk", flat=True)
        )
    earlier = {
        event.sent_id: event
        for event in Event.objects.filter(
            sent_id__in=[row.sent_id for row in rows if row.pk not in stored]
        )
        .exclude(sent_id="")
        .annotate(still_kept=ExpressionWrapper(Q(expires_at__gt=Now()), BooleanField()))
    }
    # Not one stored by this send (its id came twice in the body): that one wakes anyway.
    kept = [e for e in earlier.values() if e.pk not in stored and e.still_kept]
    woken = _wake(kept + [row for row in rows if row.pk in stored], now)  # oldest first
    matched = dict(
        Event.objects.filter(pk__in=[event.pk for event in earlier.values()]).values_list(
            "pk", "matched"
        )
    )
    results = []
    for row in rows:
        if row.pk in stored:
            results.append(Sent(row.pk, woken.get(row.pk, 0), woken=woken.get(row.pk, 0)))
        else:
            first = earlier.get(row.sent_id)
            first_id = first.pk if first else ""
            results.append(
                Sent(
                    first_id,
                    matched.get(first_id, 0),
                    duplicate=True,
                    # Counted once, whether the id came twice or was stored by this send.
                    woken=0 if first_id in stored else woken.pop(first_id, 0),
                )
            )
    return results


def _wake(events: list[Event], now: datetime) -> dict[str, int]:
    """Resolve every wait parked for each event's name and key, in one transaction, so the
    entities a bulk send wakes resume together; returns how many each woke, by event id.
    `events` come oldest first: of several of a name and key the last, the newest news,
    wakes them (as the newest kept wakes an entity reaching its step), not the first."""
    newest: dict[tuple[str, str], Event] = {}
    for event in events:
        newest[event.name, event.key] = event
    if not newest:
        return {}
    with transaction.atomic():
        waiting = [
            entry
            for entry in EventWait.objects.filter(
                name__in={name for name, _ in newest}, key__in={key for _, key in newest}
            ).values_list("wait_id", "run_id", "output_field", "name", "key")
            if entry[3:] in newest
        ]
        return _resolve(newest, waiting, now)


def waits_match(*, wait_ids: list[str], now: datetime | None = None) -> int:
    """Wake the entities of these waits (just parked) for which an event is kept: the
    newest of their name and key not expired. The event wakes them all (a chunk's entities
    parked together), then is no longer kept. Returns how many woke."""
    now = now or timezone.now()
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
            expires_at__gt=Now(),
        ).order_by("received_at")
        for event in candidates:  # the newest of each name and key wins
            if (event.name, event.key) in pairs:
                kept[event.name, event.key] = event
        return sum(_resolve(kept, waiting, now).values())


def waits_match_lately(*, now: datetime) -> int:
    """The tick's second look: wake the entities waiting for an event kept, where the event
    came or the entity was parked since the last tick that finished, less RECHECK (see the
    module's doc). Returns how many. Each side is read through its index on time, then the
    other through its name and key: the entities waiting and the events kept may both be
    many. A look older than the events' keep time finds nothing more (an event kept for an
    entity came before it was parked, and is kept that long at most), so none is made."""
    recheck = EventRecheck.objects.filter(pk=1).values_list("checked_through", flat=True)
    through = min([*recheck, now])
    since = max(through - RECHECK, now - timedelta(minutes=event_keep_minutes()))
    kept = Event.objects.filter(name=OuterRef("name"), key=OuterRef("key"), expires_at__gt=Now())
    # Not the waits of a run being cancelled: `_resolve` leaves them to the cancel.
    waits = EventWait.objects.filter(
        run__status__in=RunStatus.open(), run__cancel_requested_at__isnull=True
    )
    wait_ids = list(
        waits.filter(created_at__gte=since)
        .filter(Exists(kept))
        .values_list("pk", flat=True)[:RECHECK_MAX]
    )
    came = set(
        Event.objects.filter(received_at__gte=since, expires_at__gt=Now())
        .filter(Exists(EventWait.objects.filter(name=OuterRef("name"), key=OuterRef("key"))))
        .values_list("name", "key")[:RECHECK_MAX]
    )
    if came:
        wait_ids += [
            pk
            for pk, name, key in waits.filter(
                name__in={name for name, _ in came}, key__in={key for _, key in came}
            )
            .exclude(pk__in=wait_ids)
            .values_list("pk", "name", "key")[: RECHECK_MAX - len(wait_ids)]
            if (name, key) in came
        ]
    woken = waits_match(wait_ids=wait_ids, now=now) if wait_ids else 0
    if len(wait_ids) < RECHECK_MAX and len(came) < RECHECK_MAX:  # else the next looks again
        _recheck_mark(now)
    return woken


def _recheck_mark(now: datetime) -> None:
    """Mark the look done through `now`. A tick that finishes after a later one leaves the
    mark older than it could be: a longer look next time, never a gap."""
    if not EventRecheck.objects.filter(pk=1).update(checked_through=now):
        EventRecheck.objects.get_or_create(pk=1, defaults={"checked_through": now})


def _resolve(
    events: dict[tuple[str, str], Event],
    waiting: list[tuple[str, str, str, str, str]],
    now: datetime,
) -> dict[str, int]:
    """Resolve `waiting` (wait id, run id, output field, name, key) with the event of their
    name and key in `events`; call in a transaction. Each step's `outputField` gets the data;
    the step's output is `{data, eventId, timedOut}`. Returns how many each woke.

    An event that woke someone has it counted (`matched`) and is no longer kept, whether it
    came after its entities or they were parked after it, nor are the events of its name
    and key kept from before it: a later run reaching the step waits for the next event,
    not for this one's data or an older one's, however old. "No longer kept" is `expires_at`
    set to the database's clock, and "kept" is read against it too (`expires_at > Now()`):
    set from the sender's clock and read against a chunk's on a machine behind it, a used
    event was still kept for that chunk's entities for as long as the clocks differ."""
    goes_on = runs_lock(run_ids=sorted({run_id for _, run_id, *_ in waiting}))
    # A run being cancelled (or ended) has its waiting entities ended by the cancel: they
    # are not woken, nor counted, so an event that only they waited for stays kept.
    run_ids = sorted(run_id for run_id, open_ in goes_on.items() if open_)
    waiting = [entry for entry in waiting if goes_on.get(entry[1])]
    by_set: dict[tuple[tuple[str, str], str], list[str]] = {}
    for wait_id, _, output_field, name, key in waiting:
        if (name, key) in events:
            by_set.setdefault(((name, key), output_field), []).append(wait_id)
    if not by_set:
        return {}
    order = sorted(by_set)
    counts = waits_resolve_sets(
        sets=[(by_set[pair, field], _resolution(events[pair], field)) for pair, field in order],
        run_ids=run_ids,
        now=now,
    )
    EventWait.objects.filter(pk__in=[pk for ids in by_set.values() for pk in ids]).delete()
    woken: dict[str, int] = {}
    for (pair, _), count in zip(order, counts, strict=True):
        woken[events[pair].pk] = woken.get(events[pair].pk, 0) + count
    received = {event.pk: event for event in events.values()}
    for event_id, count in sorted(woken.items()):
        if count:
            event = received[event_id]
            Event.objects.filter(pk=event_id).update(matched=F("matched") + count, expires_at=Now())
            # The events of its name and key kept from before it are older news: a later
            # run reaching the step must not be handed one of them.
            Event.objects.filter(
                name=event.name,
                key=event.key,
                received_at__lte=event.received_at,
                expires_at__gt=Now(),
            ).update(expires_at=Now())
    return woken


def _resolution(event: Event, output_field: str) -> Resolution:
    """The step's output holds the event's data; `outputField` is set from it, so the data
    is stored once in each wait's resolution, not twice (an event keyed on a run's id wakes
    all its entities: ENTITY_MAX_DATA_BYTES each)."""
    return Resolution(
        "continue",
        set_from_output={output_field: "data"} if output_field else {},
        output={"data": event.data, "eventId": event.pk, "timedOut": False},
    )


def waits_time_out(*, now: datetime, limit: int = 1000) -> int:
    """Resolve the waits whose `timeoutMinutes` passed, as their `onTimeout` says: `limit`
    a transaction, each resolution its own (it names the wait's event and key) but written
    in one statement, as a run's entities parked together time out together."""
    timed_out = 0
    while True:
        due = list(
            EventWait.objects.filter(timeout_at__lte=now)
            .order_by("timeout_at")
            .values_list("wait_id", "run_id", "on_timeout", "name")[:limit]
        )
        if not due:
            return timed_out
        with transaction.atomic():
            run_ids = sorted({run_id for _, run_id, *_ in due})
            runs_lock(run_ids=run_ids)
            timed_out += waits_resolve_each(
                resolutions={
                    wait_id: _timed_out(on_timeout, name) for wait_id, _, on_timeout, name in due
                },
                run_ids=run_ids,
                now=now,
            )
            EventWait.objects.filter(pk__in=[entry[0] for entry in due]).delete()
        if len(due) < limit:
            return timed_out


def _timed_out(on_timeout: str, name: str) -> Resolution:
    # The key is rendered from the entity's data, and an item's error and the run's log are
    # read by whoever may view runs: they name the event, never the key (the run's items
    # show it in `waitingFor`, to who may read entities, while the entity waits).
    why = f"No event {name!r} with the entity's key came in time (timeoutMinutes)."
    if on_timeout == EventWait.OnTimeout.CONTINUE:
        return Resolution("continue", output={"data": None, "eventId": None, "timedOut": True})
    if on_timeout == EventWait.OnTimeout.STOP:
        return Resolution("stop", log=why)
    return Resolution("fail", error=why)


def events_prune(*, now: datetime, limit: int) -> int:
    """Delete up to `limit` events past their keep time (listed EVENT_KEEP_MINUTES after they
    stopped being matchable); returns how many (retention's pruner). An event sent with an
    `id` is kept besides for IDEMPOTENCY_KEEP_HOURS after it came, as an Idempotency-Key
    is: its row is what makes a retry of that id a duplicate, and a sender's late retry
    (webhooks retry for hours) must not wake the entities of a later run with old news."""
    cutoff = now - timedelta(minutes=event_keep_minutes())
    ids_kept_from = now - timedelta(hours=settings.IDEMPOTENCY_KEEP_HOURS)
    ids = list(
        Event.objects.filter(expires_at__lt=cutoff)
        .filter(Q(sent_id="") | Q(received_at__lt=ids_kept_from))
        .order_by()
        .values_list("pk", flat=True)[:limit]
    )
    return Event.objects.filter(pk__in=ids).delete()[0] if ids else 0
