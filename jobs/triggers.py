"""Entity triggers: the outbox of entity changes (`entities.models.EntityEvent`) read,
matched against active workflows' `entity.created` / `entity.updated` triggers, and turned
into runs. A change starts only the workflows whose triggers it met when it was made (the
event names them) and still meets: not one created, activated or edited after it.

Events are gathered for TRIGGER_DEBOUNCE_S from the oldest one waiting; then the events
waiting, oldest first and up to RUN_MAX_IDS entities in all, become one run per workflow
over the entities they name, each once (an entity created, then edited while gathered, is
in the `entity.created` run only), so a bulk import of 10,000 entities starts one run,
whether it came as one request or as 10,000. The runs are started and the events deleted in
one transaction: a crash before COMMIT leaves the events for the next delivery, and a
redelivered batch finds them gone, so no event is lost and none starts two runs. Events are
claimed with `FOR UPDATE SKIP LOCKED`, so two dispatchers never take the same ones.

An entity an open run of the workflow holds (an AI call in flight, a review) would be left out
of the new run (`jobs.item_rows`), its change never run: it is held back instead, an event for
that workflow alone, which later dispatches start once the holding run has let it go.

No loops: a change made by a run of workflow W never triggers W. Changes made by runs of
other workflows do, one level deeper each time; past TRIGGER_MAX_DEPTH the chain is cut and
logged, event by event (in the worker's log, and in the log of each run whose changes it did
not run): a person's change gathered with a chain's is still run.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from entities.models import Entity, EntityEvent
from jobs import queue
from jobs.item_rows import HOLDING, open_runs_lock
from jobs.models import Run, RunItem, RunLog
from jobs.services import run_start
from workflows.models import Workflow

logger = logging.getLogger(__name__)
EVENTS_PAGE = 1000  # event rows (their sizes only) read at a time while claiming
QUEUED_KEY = "triggers:dispatch-queued"
CUT = "Trigger chain cut"  # how a run's log line saying so begins
# A workflow's runs of one dispatch, in this order: an entity in both is run once, as created.
KINDS = (EntityEvent.Kind.CREATED, EntityEvent.Kind.UPDATED)


def _matches(trigger: dict, event: EntityEvent) -> bool:
    if trigger.get("on") != event.kind:
        return False
    fields = trigger.get("fields")
    return not fields or bool(set(fields) & set(event.fields))


@dataclass
class Gathered:
    """What one workflow is to be started on for one kind of event: the entities in order,
    each once; the deepest event taken; the data keys those events changed."""

    ids: dict = field(default_factory=dict)
    depth: int = 0
    fields: set = field(default_factory=set)


def _gather(events: list[EntityEvent]) -> dict[tuple[str, str], Gathered]:
    """(workflow id, event kind) -> what it is started on. Events past TRIGGER_MAX_DEPTH
    are left out."""
    type_ids = {event.entity_type_id for event in events}
    workflows = [
        workflow
        for workflow in Workflow.objects.filter(
            entity_type_id__in=type_ids, status=Workflow.Status.ACTIVE
        ).only("pk", "entity_type_id", "triggers")
        if workflow.triggers
    ]
    gathered: dict[tuple[str, str], Gathered] = {}
    cut: dict[tuple[str, str], int] = {}
    cut_runs: dict[str, dict[tuple[str, str], int]] = {}  # origin run -> what it did not start
    for event in sorted(events, key=lambda event: KINDS.index(event.kind)):
        for workflow in workflows:
            if workflow.entity_type_id != event.entity_type_id:
                continue
            if event.origin_workflow_id == workflow.pk:
                continue  # a run's own changes never start its workflow again
            if event.listener_ids is not None and workflow.pk not in event.listener_ids:
                continue  # its trigger came after the change (or it was held back for another)
            if not any(_matches(trigger, event) for trigger in workflow.triggers):
                continue
            if event.depth + 1 > settings.TRIGGER_MAX_DEPTH:
                cut[(workflow.pk, event.kind)] = cut.get((workflow.pk, event.kind), 0) + event.size
                if event.origin_run_id:
                    by_run = cut_runs.setdefault(event.origin_run_id, {})
                    by_run[(workflow.pk, event.kind)] = (
                        by_run.get((workflow.pk, event.kind), 0) + event.size
                    )
                continue
            created = gathered.get((workflow.pk, EntityEvent.Kind.CREATED), Gathered()).ids
            taken = gathered.setdefault((workflow.pk, event.kind), Gathered())
            taken.ids.update(dict.fromkeys(i for i in event.entity_ids if i not in created))
            taken.depth = max(taken.depth, event.depth)
            taken.fields.update(event.fields)
    for (workflow_id, kind), count in cut.items():
        logger.warning(
            "Trigger chain cut at depth %s (TRIGGER_MAX_DEPTH=%s): workflow %s not started "
            "on %s for %s entities.",
            settings.TRIGGER_MAX_DEPTH + 1,
            settings.TRIGGER_MAX_DEPTH,
            workflow_id,
            kind,
            count,
        )
    _cut_logs(cut_runs)
    return {key: value for key, value in gathered.items() if value.ids}


def _cut_logs(cut_runs: dict[str, dict[tuple[str, str], int]]) -> None:
    """A warning in the log of each run whose changes a cut chain did not run, naming each
    workflow not started: where the API's user reads why the loop stopped. Once per run and
    workflow (a long run's commits are gathered by many dispatches: a line each would grow
    its log with its size). Written in the dispatch's transaction, which deletes the events:
    once, whatever is delivered again."""
    if not cut_runs:
        return
    kept = set(Run.objects.filter(pk__in=list(cut_runs)).values_list("pk", flat=True))
    said: dict[str, list[str]] = {}
    for run_id, message in RunLog.objects.filter(
        run_id__in=kept, level=RunLog.Level.WARNING, message__startswith=CUT
    ).values_list("run_id", "message"):
        said.setdefault(run_id, []).append(message)
    lines = []
    for run_id, not_started in sorted(cut_runs.items()):
        for (workflow_id, kind), count in sorted(not_started.items()):
            what = f"this run's changes did not start workflow {workflow_id} ({kind})"
            if run_id not in kept or any(what in line for line in said.get(run_id, ())):
                continue
            depths = f"{CUT} at depth {settings.TRIGGER_MAX_DEPTH + 1} "
            depths += f"(TRIGGER_MAX_DEPTH={settings.TRIGGER_MAX_DEPTH})"
            message = (
                f"{depths}: {what} on {count} entities, nor will on its later changes. "
                "Workflows triggering each other in a loop stop here."
            )
            lines.append(RunLog(run_id=run_id, level=RunLog.Level.WARNING, message=message))
    RunLog.objects.bulk_create(lines)


def _held(workflow_id: str, ids: list[str]) -> set[str]:
    """Those of `ids` an open run of the workflow holds (their item pending, running or
    waiting). Takes the workflow's row lock first, as a run's start does to make its items
    (`jobs.item_rows`), so no run takes one of the others before this dispatch's runs do."""
    open_runs = open_runs_lock(workflow_id)
    if not open_runs:
        return set()
    return set(
        RunItem.objects.filter(run_id__in=open_runs, status__in=HOLDING, entity_id__in=ids)
        .values_list("entity_id", flat=True)
        .distinct()
    )


def _hold_back(workflow_id: str, kind: str, ids: list[str], taken: Gathered) -> int:
    """Record the held entities' change again, for this workflow only (its other workflows
    have run on it); a later dispatch starts it once the run holding them has ended. Returns
    the new event's id."""
    entity_type_id = Workflow.objects.values_list("entity_type_id", flat=True).get(pk=workflow_id)
    event = EntityEvent.objects.create(
        kind=kind,
        entity_type_id=entity_type_id,
        entity_ids=ids,
        size=len(ids),
        fields=sorted(taken.fields),
        depth=taken.depth,
        listener_ids=[workflow_id],
    )
    logger.info(
        "Workflow %s: %s entities changed (%s) are in an open run of it: held back.",
        workflow_id,
        len(ids),
        kind,
    )
    return event.pk


def _start(workflow_id: str, kind: str, taken: Gathered) -> tuple[int, int | None]:
    """Runs (of at most RUN_MAX_IDS entities each) over the entities that still exist and
    no open run of the workflow holds; the held ones are held back (a new event, whose id is
    returned with the count of runs started). A run would leave them out (item `skipped`),
    and their change would never be run."""
    ids = list(taken.ids)
    existing = set(Entity.objects.filter(pk__any=ids).values_list("pk", flat=True))
    ids = [entity_id for entity_id in ids if entity_id in existing]
    held = _held(workflow_id, ids) if ids else set()
    held_back = None
    if held:
        held_back = _hold_back(workflow_id, kind, [i for i in ids if i in held], taken)
        ids = [entity_id for entity_id in ids if entity_id not in held]
    size = settings.RUN_MAX_IDS
    for start in range(0, len(ids), size):
        run = run_start(
            workflow_id=workflow_id,
            entity_ids=ids[start : start + size],
            trigger={"type": kind, "depth": taken.depth + 1},
        )
        logger.info("Workflow %s triggered on %s: run %s", workflow_id, kind, run.pk)
    return (len(ids) + size - 1) // size, held_back


def _waiting(below: int | None) -> QuerySet:
    """The events waiting; with `below`, only those older than that event (one this
    dispatch held back, and those recorded since, are left for the next)."""
    events = EntityEvent.objects.all()
    return events if below is None else events.filter(pk__lt=below)


def _sizes(below: int | None):
    """(pk, size) of every event waiting, oldest first, a page at a time."""
    after = 0
    while page := list(
        _waiting(below).filter(pk__gt=after).order_by("pk").values_list("pk", "size")[:EVENTS_PAGE]
    ):
        yield from page
        after = page[-1][0]


def _claim(below: int | None) -> list[EntityEvent]:
    """Lock the oldest events no other dispatcher holds, up to RUN_MAX_IDS entities in all
    (at least one event). The cut is worked out from the events' sizes, read without a lock,
    and only the events within it are locked (`SKIP LOCKED`: those another dispatcher took
    meanwhile are left to it), so no row past the cut is held from the next dispatcher and
    the ids of events left for later are never loaded."""
    taken: list[int] = []
    named = 0
    for pk, size in _sizes(below):
        if taken and named + size > settings.RUN_MAX_IDS:
            break
        taken.append(pk)
        named += size
    return list(
        EntityEvent.objects.select_for_update(skip_locked=True).filter(pk__in=taken).order_by("pk")
    )


def entity_events_dispatch() -> int:
    """Turn the events waiting (once the oldest has waited TRIGGER_DEBOUNCE_S) into runs;
    returns how many runs started. Queues itself again for events still gathering."""
    window = timedelta(seconds=settings.TRIGGER_DEBOUNCE_S)
    started = 0
    below = None  # the first event this dispatch held back: it is the next one's
    while True:
        with transaction.atomic():
            oldest = _waiting(below).order_by("pk").values_list("created_at", flat=True)
            oldest = oldest.first()
            if oldest is None:
                return started
            wait = (oldest + window - timezone.now()).total_seconds()
            if wait > 0:
                dispatch_enqueue(countdown=wait, again=True)
                return started
            events = _claim(below)
            if not events:
                return started  # another dispatcher holds them
            # In workflow order: each start takes its workflow's row lock (jobs.item_rows),
            # so two dispatchers never wait on each other's.
            for (workflow_id, kind), taken in sorted(_gather(events).items()):
                runs, held_back = _start(workflow_id, kind, taken)
                started += runs
                if held_back is not None and below is None:
                    below = held_back
            EntityEvent.objects.filter(pk__in=[event.pk for event in events]).delete()


def dispatch_enqueue(*, countdown: float | None = None, again: bool = False) -> None:
    """Queue a dispatch for when the events now gathering are due; one per window (per
    cache: beat's sweep covers whatever a missed one would have taken)."""
    countdown = settings.TRIGGER_DEBOUNCE_S if countdown is None else countdown
    if again:
        cache.delete(QUEUED_KEY)
    if cache.add(QUEUED_KEY, 1, timeout=max(1, int(countdown))):
        current_app.send_task(queue.DISPATCH_TRIGGERS, countdown=countdown)


def on_entity_events_recorded(**kwargs) -> None:
    """After an entity write's COMMIT (`entities.events.entity_events_recorded`)."""
    try:
        dispatch_enqueue()
    except Exception:  # the broker being down loses nothing: beat sweeps the outbox
        logger.exception("Could not queue the trigger dispatch; beat's sweep will take it.")
