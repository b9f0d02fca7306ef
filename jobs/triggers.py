"""Entity triggers: the outbox of entity changes (`entities.models.EntityEvent`) read,
matched against active workflows' `entity.created` / `entity.updated` triggers, and turned
into runs.

Events are gathered for TRIGGER_DEBOUNCE_S from the oldest one waiting, then every event
waiting becomes one run per workflow over the entities they name (each once), so a bulk
import of 10,000 entities starts one run. The runs are started and the events deleted in
one transaction: a crash before COMMIT leaves the events for the next delivery, and a
redelivered batch finds them gone, so no event is lost and none starts two runs. Events are
claimed with `FOR UPDATE SKIP LOCKED`, so two dispatchers never take the same ones.

No loops: a change made by a run of workflow W never triggers W. Changes made by runs of
other workflows do, one level deeper each time; past TRIGGER_MAX_DEPTH the chain is cut and
logged.
"""

import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from entities.models import Entity, EntityEvent
from jobs import queue
from jobs.services import run_start
from workflows.models import Workflow

logger = logging.getLogger(__name__)
EVENTS_PER_DISPATCH = 200  # rows; each names the entities of one write (up to 10,000)
QUEUED_KEY = "triggers:dispatch-queued"


def _matches(trigger: dict, event: EntityEvent) -> bool:
    if trigger.get("on") != event.kind:
        return False
    fields = trigger.get("fields")
    return not fields or bool(set(fields) & set(event.fields))


def _gather(events: list[EntityEvent]) -> dict[tuple[str, str], tuple[dict, int]]:
    """(workflow id, event kind) -> (entity ids in order, each once; the deepest event)."""
    type_ids = {event.entity_type_id for event in events}
    workflows = [
        workflow
        for workflow in Workflow.objects.filter(
            entity_type_id__in=type_ids, status=Workflow.Status.ACTIVE
        ).only("pk", "entity_type_id", "triggers")
        if workflow.triggers
    ]
    gathered: dict[tuple[str, str], tuple[dict, int]] = {}
    for event in events:
        for workflow in workflows:
            if workflow.entity_type_id != event.entity_type_id:
                continue
            if event.origin_workflow_id == workflow.pk:
                continue  # a run's own changes never start its workflow again
            if not any(_matches(trigger, event) for trigger in workflow.triggers):
                continue
            ids, depth = gathered.get((workflow.pk, event.kind), ({}, 0))
            ids.update(dict.fromkeys(event.entity_ids))
            gathered[(workflow.pk, event.kind)] = (ids, max(depth, event.depth))
    return gathered


def _start(workflow_id: str, kind: str, entity_ids: dict, depth: int) -> int:
    """Runs (of at most RUN_MAX_IDS entities each) over the entities that still exist."""
    run_depth = depth + 1
    if run_depth > settings.TRIGGER_MAX_DEPTH:
        logger.warning(
            "Trigger chain cut at depth %s (TRIGGER_MAX_DEPTH=%s): workflow %s not started "
            "on %s for %s entities.",
            run_depth,
            settings.TRIGGER_MAX_DEPTH,
            workflow_id,
            kind,
            len(entity_ids),
        )
        return 0
    ids = list(entity_ids)
    existing = set(Entity.objects.filter(pk__any=ids).values_list("pk", flat=True))
    ids = [entity_id for entity_id in ids if entity_id in existing]
    size = settings.RUN_MAX_IDS
    for start in range(0, len(ids), size):
        run = run_start(
            workflow_id=workflow_id,
            entity_ids=ids[start : start + size],
            trigger={"type": kind, "depth": run_depth},
        )
        logger.info("Workflow %s triggered on %s: run %s", workflow_id, kind, run.pk)
    return (len(ids) + size - 1) // size


def entity_events_dispatch() -> int:
    """Turn the events waiting (once the oldest has waited TRIGGER_DEBOUNCE_S) into runs;
    returns how many runs started. Queues itself again for events still gathering."""
    window = timedelta(seconds=settings.TRIGGER_DEBOUNCE_S)
    started = 0
    while True:
        with transaction.atomic():
            oldest = EntityEvent.objects.order_by("pk").values_list("created_at", flat=True)
            oldest = oldest.first()
            if oldest is None:
                return started
            wait = (oldest + window - timezone.now()).total_seconds()
            if wait > 0:
                dispatch_enqueue(countdown=wait, again=True)
                return started
            events = list(
                EntityEvent.objects.select_for_update(skip_locked=True).order_by("pk")[
                    :EVENTS_PER_DISPATCH
                ]
            )
            if not events:
                return started  # another dispatcher holds them
            for (workflow_id, kind), (ids, depth) in _gather(events).items():
                started += _start(workflow_id, kind, ids, depth)
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
