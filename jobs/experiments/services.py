"""Start an experiment, execute its chunks, end it, cancel it.

An experiment samples its entities when it starts (the named ids, or a seeded random sample
of a filter's matches) and stores them in order; chunk `n` takes the `n`-th slice of
`chunk_size`. A chunk runs both versions over its entities through the same step loop as a
run, step-major (so a step batches its model calls), with the `ShadowEngine`: nothing is
written but the result rows, one per entity, inserted `ON CONFLICT DO NOTHING` on
(experiment, entity), so a redelivered chunk writes no entity twice. `done` is recounted from
the rows, and the experiment ends `completed` once every entity has its row (or `cancelled`
at once when asked: in-flight chunks see it at their next step and write nothing more).

A side at an `ai_generate` step in batch mode waits for a provider batch the experiment owns,
holding no worker, and is continued once answered (`batches`); its entity's row is written
once both of its sides have ended.
"""

import random
import time
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from config.api.errors import Conflict, FieldError, InvalidInput
from entities.filters import entities_matching
from entities.models import Entity
from jobs import queue
from jobs.costs import budget_columns, model_of, unpriced_refuse
from jobs.engine.outcomes import given_up_error
from jobs.engine.states import state_of_entity
from jobs.engine.steps import steps_run
from jobs.experiments.batches import (
    Left,
    Parked,
    entities_finish,
    experiment_batches_cancel,
    experiment_goes_on,
    sides_resume,
    sides_store,
)
from jobs.experiments.log import Level, experiment_log
from jobs.experiments.models import Experiment, ExperimentResult, ExperimentStatus
from jobs.experiments.selectors import sides_left, sides_to_resume
from jobs.experiments.shadow import ShadowEngine
from jobs.experiments.sides import (
    ARMS,
    GONE,
    Scoring,
    failed_side,
    results_of,
    side_of,
    unrun_results,
)
from jobs.experiments.summaries import summary_store
from jobs.lifecycle import not_before, times_ended
from jobs.models import Job
from jobs.services import entity_ids_check
from workflows.models import Workflow, WorkflowVersion
from workflows.steps.chunking import chunk_size
from workflows.steps.runtime import Outcome


def experiment_start(
    *,
    workflow: Workflow,
    baseline: WorkflowVersion,
    candidate: WorkflowVersion,
    scorers: list[dict],
    entity_ids: list[str] | None = None,
    entity_filter: dict | None = None,
    sample: int | None = None,
    budget: dict | None = None,
    created_by=None,
) -> Experiment:
    """Store the experiment and its job, and queue its chunks once that commits."""
    if entity_ids is None:
        entity_ids = _sample(workflow, entity_filter or {}, sample)
    else:
        entity_ids_check(entity_ids, settings.EXPERIMENT_MAX_ENTITIES)
        found = set(
            Entity.objects.filter(
                pk__in=entity_ids, entity_type_id=workflow.entity_type_id
            ).values_list("pk", flat=True)
        )
        missing = [pk for pk in entity_ids if pk not in found]
        if missing:
            message = (
                f"No entity of this workflow's entity type ({workflow.entity_type_id}) has the "
                f"id {', '.join(map(repr, missing[:10]))}."
            )
            details = [FieldError("entityIds", message, "does_not_exist")]
            raise InvalidInput(message, details=details)
    columns = budget_columns(baseline, budget)
    if budget and budget.get("maxCostUsd") is not None:
        columns = budget_columns(candidate, budget)  # both versions' models must be priced
        for index, scorer in enumerate(scorers):  # and the judges': they spend from it too
            if scorer["type"] == "judge":
                unpriced_refuse([model_of(scorer)], f"scorers[{index}].model")
    # As a run of either version would chunk them (the smaller), unless set.
    size = settings.EXPERIMENT_CHUNK_SIZE or min(
        chunk_size(version.steps, len(entity_ids)) for version in (baseline, candidate)
    )
    with transaction.atomic():
        experiment = Experiment.objects.create(
            workflow=workflow,
            baseline=baseline,
            candidate=candidate,
            entity_ids=entity_ids,
            scorers=scorers,
            chunk_size=size,
            total=len(entity_ids),
            created_by=created_by,
            **columns,
        )
        Job.objects.create(type=Job.Type.EXPERIMENT, experiment=experiment)
        chunks = (len(entity_ids) + size - 1) // size
        transaction.on_commit(partial(queue.experiment_chunks_enqueue, experiment.pk, chunks))
    return experiment


def _sample(workflow: Workflow, entity_filter: dict, sample: int | None) -> list[str]:
    """The matches' ids, or a random sample of `sample` of them, seeded by what was asked, so
    the same filter and size sample the same entities (while the matches stay the same)."""
    most = settings.EXPERIMENT_MAX_ENTITIES
    ids = list(
        entities_matching(entity_type_id=workflow.entity_type_id, entity_filter=entity_filter)
        .order_by("pk")
        .values_list("pk", flat=True)[: settings.EXPERIMENT_MAX_MATCHES + 1]
    )
    if len(ids) > settings.EXPERIMENT_MAX_MATCHES:
        message = f"More than {settings.EXPERIMENT_MAX_MATCHES} entities match: narrow the filter."
        raise InvalidInput(message, details=[FieldError("filter", message, "too_many")])
    if not ids:
        message = "No entity matches the filter."
        raise InvalidInput(message, details=[FieldError("filter", message, "empty")])
    if sample is None and len(ids) > most:
        message = f"{len(ids)} entities match, more than {most}: give a `sample` size."
        raise InvalidInput(message, details=[FieldError("sample", message, "too_many")])
    if sample is not None and sample < len(ids):
        ids = random.Random(f"{workflow.pk}:{sample}:{len(ids)}").sample(ids, sample)
    return ids


def experiment_chunk_execute(*, experiment_id: str, chunk: int) -> None:
    """Both versions over the chunk's entities, scored, one result row each."""
    experiment = (
        Experiment.objects.select_related("baseline", "candidate", "workflow")
        .filter(pk=experiment_id)
        .first()
    )
    if experiment is None or experiment.is_ended or experiment.cancel_requested_at:
        return
    now = timezone.now()
    Experiment.objects.filter(pk=experiment_id, status=ExperimentStatus.PENDING).update(
        status=ExperimentStatus.RUNNING, started_at=not_before("created_at", now)
    )
    Experiment.objects.filter(pk=experiment_id).update(heartbeat_at=now)
    size = experiment.chunk_size
    ids = experiment.entity_ids[chunk * size : (chunk + 1) * size]
    written = set(
        ExperimentResult.objects.filter(experiment=experiment, entity_id__in=ids).values_list(
            "entity_id", flat=True
        )
    )
    written |= set(sides_left(experiment_id).filter(entity_id__in=ids))  # parked: not ours
    ids = [pk for pk in ids if pk not in written]
    key = f"chunk:{chunk}"  # the task that parks, and finishes what the budget refused
    delivery = _chunk_delivery(experiment_id, chunk) if ids else None
    if delivery == GIVE_UP:
        _chunk_give_up(experiment, chunk * size, ids)
    elif delivery == RUN:
        _chunk_run(experiment, chunk * size, ids, key)
    if experiment.sides.exists():  # a delivery before may have left them unfinished
        entities_finish(experiment, ShadowEngine(experiment), key=key)
    experiment_end_if_done(experiment_id=experiment_id)


RUN, GIVE_UP, LEAVE = "run", "give up", "leave"


def _chunk_delivery(experiment_id: str, chunk: int) -> str:
    """What this delivery of a chunk with entities left does: RUN them (counted), GIVE_UP
    on them (counted) when RUN_MAX_ATTEMPTS deliveries before it started and the last one
    started RUN_STALL_AFTER_S ago (so they died: a live one would have written its rows by
    then, or will be given up when the stall check queues the chunk again), or LEAVE them to
    that last delivery, which may still be running."""
    now = timezone.now()
    with transaction.atomic():
        row = Experiment.objects.select_for_update().only("chunk_deliveries").get(pk=experiment_id)
        before = row.chunk_deliveries.get(str(chunk)) or {"count": 0, "at": None}
        delivery = RUN
        if before["count"] >= settings.RUN_MAX_ATTEMPTS:
            started = datetime.fromisoformat(before["at"])
            if now - started < timedelta(seconds=settings.RUN_STALL_AFTER_S):
                return LEAVE
            delivery = GIVE_UP
        row.chunk_deliveries[str(chunk)] = {"count": before["count"] + 1, "at": now.isoformat()}
        row.save(update_fields=["chunk_deliveries"])
    return delivery


def _chunk_give_up(experiment: Experiment, first: int, ids: list[str]) -> None:
    """Every delivery of the chunk before this one died before its entities had a row (a
    worker killed each time, a crash outside the steps): one more would too, and would pay
    for its model calls again. Their rows say so, both sides failed, no model called;
    nothing is written once the experiment was cancelled or has ended."""
    error = given_up_error("this entity's chunk")
    rows = unrun_results(
        experiment,
        entity_ids=ids,
        position={pk: first + index for index, pk in enumerate(experiment.entity_ids[first:])},
        side=failed_side(error),
    )
    with transaction.atomic():
        if experiment_goes_on(experiment.pk):
            ExperimentResult.objects.bulk_create(rows, ignore_conflicts=True)
            experiment_log(experiment.pk, Level.ERROR, f"Both sides: {error}", entity_ids=ids)


def _chunk_run(experiment: Experiment, first: int, ids: list[str], key: str) -> None:
    entities = {
        entity.pk: entity
        for entity in Entity.objects.select_related("entity_type").filter(pk__in=ids)
    }
    position = {pk: first + index for index, pk in enumerate(experiment.entity_ids[first:])}
    engine = ShadowEngine(experiment)
    engine.beat_at = time.monotonic()  # the chunk's start was one
    sides: dict[str, dict[str, dict]] = {pk: {} for pk in entities}
    left = Left()  # sides parked for a provider batch (batch mode), and their entities'
    for arm in ARMS:
        version = getattr(experiment, arm)
        states = [state_of_entity(entity) for entity in entities.values()]
        engine.waits, engine.parked = {}, {}
        started = time.monotonic()
        steps_run(
            states=states,
            steps=version.steps,
            run_id=experiment.pk,
            workflow_id=experiment.workflow_id,
            engine=engine,
            dry_run=True,
        )
        # Step-major: the entities' calls were in flight together; each gets its share.
        seconds = (time.monotonic() - started) / max(len(states), 1)
        for state in states:
            pk = state.entity_id
            before = {"data": entities[pk].data, "status": entities[pk].status}
            waits = engine.waits.get(pk, [])
            if state.outcome == Outcome.WAITING:
                step_index, request = engine.parked[pk]
                left.parked[(pk, arm)] = Parked(
                    arm, position.get(pk, 0), state, step_index, request, before, waits, seconds
                )
            else:
                sides[pk][arm] = side_of(state, before, waits, seconds)
    if engine.cancelled():
        engine.flush()  # what the calls made spent counts all the same
        return  # the sides may be cut short: write nothing
    waiting = {pk for pk, _ in left.parked}
    rows = results_of(
        experiment,
        engine,
        [
            Scoring(
                pk,
                position.get(pk, 0),
                {**entity.data, "id": entity.pk, "status": entity.status},
                sides[pk],
            )
            for pk, entity in entities.items()
            if pk not in waiting
        ],
    )
    # An entity deleted since the experiment started has a row too (so the experiment ends),
    # both sides failed saying so, and no verdict.
    rows += unrun_results(
        experiment,
        entity_ids=[pk for pk in ids if pk not in entities],
        position=position,
        side=GONE,
    )
    # What the calls used is counted with the rows that show it: a delivery killed before
    # this commit counted nothing (its redelivery makes the calls again, and counts them).
    # A cancel asked while the judges scored them (after the check above) writes no row.
    with transaction.atomic():
        if waiting:  # their ended sides are kept with them until every side has ended
            for pk in waiting:
                for arm, side in sides[pk].items():
                    left.ended[(pk, arm)] = (position.get(pk, 0), side)
            sides_store(experiment, engine, left, key=key)
        if experiment_goes_on(experiment.pk):
            ExperimentResult.objects.bulk_create(rows, ignore_conflicts=True)
        engine.flush()


def experiment_end_if_done(*, experiment_id: str) -> None:
    """Recount `done` from the rows; end the experiment once every entity has one. Two
    chunks ending together each count: the count of the one whose rows were not yet seen
    may be written last, so `done` only grows (rows are never taken back while it is open),
    and the end is decided on the stored count."""
    done = ExperimentResult.objects.filter(experiment_id=experiment_id).count()
    Experiment.objects.filter(pk=experiment_id).update(
        done=Greatest(F("done"), Value(done)), heartbeat_at=timezone.now()
    )
    ended = Experiment.objects.filter(
        pk=experiment_id, total__lte=F("done"), status__in=ExperimentStatus.open()
    ).update(status=ExperimentStatus.COMPLETED, **times_ended(timezone.now()))
    if ended:
        experiment = Experiment.objects.get(pk=experiment_id)
        if experiment.budget_reached_at:
            Experiment.objects.filter(pk=experiment_id).update(
                error="Budget reached: the entities past it failed on their next model call."
            )
        summary_store(experiment)


def experiment_sides_resume(*, experiment_id: str, key: str) -> None:
    """Continue the experiment's sides its provider batch `key` answered, and end the
    experiment if that was the last of it."""
    sides_resume(experiment_id=experiment_id, key=key)
    experiment_end_if_done(experiment_id=experiment_id)


def experiments_resume_stalled(*, stalled_after: timedelta | None = None) -> int:
    """Queue again the chunks without all their rows of open experiments that showed no
    progress for `stalled_after` (RUN_STALL_AFTER_S): their messages were lost, or their
    worker vanished past the broker's redelivery. Chunks are idempotent (a chunk being worked
    on loses nothing but time). Entities whose sides wait for a provider batch are not a
    chunk's any more: their answered sides are resumed again instead (a lost resume task, a
    worker killed while continuing them). Returns the number of chunks queued."""
    stalled_after = stalled_after or timedelta(seconds=settings.RUN_STALL_AFTER_S)
    now = timezone.now()
    cutoff = now - stalled_after
    stale = Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    queued = 0
    for experiment_id in Experiment.objects.filter(
        stale, status__in=ExperimentStatus.open()
    ).values_list("pk", flat=True):
        with transaction.atomic():
            # Take the resume: one beat (or caller) re-queues a stalled experiment per period.
            taken = Experiment.objects.filter(
                Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True), pk=experiment_id
            ).update(heartbeat_at=now)
            if not taken:
                continue
            experiment = Experiment.objects.only("entity_ids", "chunk_size").get(pk=experiment_id)
            written = set(experiment.results.values_list("entity_id", flat=True))
            written |= set(sides_left(experiment_id))
            for key in sides_to_resume(experiment_id):
                transaction.on_commit(
                    partial(queue.experiment_sides_resume_enqueue, experiment_id, key)
                )
            size = experiment.chunk_size
            chunks = sorted(
                {
                    index // size
                    for index, pk in enumerate(experiment.entity_ids)
                    if pk not in written
                }
            )
            if not chunks:  # every row is there: only the end was missed
                transaction.on_commit(partial(experiment_end_if_done, experiment_id=experiment_id))
                continue
            transaction.on_commit(
                partial(queue.experiment_chunks_enqueue, experiment_id, chunks=chunks)
            )
        queued += len(chunks)
    return queued


def experiment_cancel(*, experiment_id: str) -> Experiment:
    """End the experiment `cancelled` now: no chunk starts a step after it, nothing it
    had not written is written, and its open provider batches are cancelled. Cancelling an
    ended experiment is a 409."""
    now = timezone.now()
    with transaction.atomic():
        cancelled = Experiment.objects.filter(
            pk=experiment_id, status__in=ExperimentStatus.open()
        ).update(
            status=ExperimentStatus.CANCELLED,
            cancel_requested_at=now,
            completed_at=times_ended(now)["completed_at"],
        )
        if cancelled:
            experiment_batches_cancel(experiment_id=experiment_id)
    experiment = Experiment.objects.get(pk=experiment_id)
    if cancelled:
        summary_store(experiment)  # chunks in flight write nothing more
    if not cancelled:
        raise Conflict(f"The experiment has already ended ({experiment.status}).", code="job_ended")
    return experiment
