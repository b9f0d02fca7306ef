"""Retention: what is deleted, and when. Nothing the product writes is kept for ever.

- Ended runs whose end is older than RUNS_KEEP_DAYS, with everything of theirs: items, logs,
  waits and each kind's records of them (reviews, provider batches and their requests:
  `WaitKind.run_records`), schedule fires, the job. Open runs are never touched, nor a run an
  open retry reads.
- Idempotency records older than IDEMPOTENCY_KEEP_HOURS (they replay nothing after it).
- A kind of wait's own records past their keep time (`WaitKind.prune`: events,
  `POST /api/v1/events`, EVENT_KEEP_MINUTES past theirs; the local stand-in provider's
  batches once the provider batch of ours they answered is gone).
- Entity revisions older than ENTITY_REVISIONS_KEEP_DAYS, but the newest of each entity
  and those of open runs or of runs an open revert reverts (`entity_revisions_prune`).

Each pruner deletes at most `limit` rows (RETENTION_BATCH_ROWS) in one transaction and
returns how many, so a batch holds its locks briefly and a million items are pruned over
many batches; celery beat's `prune-old-records` entry calls `retention_prune`, whose task
queues itself again while any pruner may have more left. Safe to run twice at once: runs
being pruned are locked and skipped by the other (`SKIP LOCKED`), and deleting what is gone
deletes nothing.

A new kind of record with its own retention is one function `(*, now, limit) -> Batch`
(rows deleted, whether it stopped at its limit) appended to `PRUNERS`; one that returns only
the rows it deleted is appended as `counted(pruner)`. A kind of wait needs neither: its
hooks are read from the registry of kinds at each call (`pruners()`).
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.fields.json import KT
from django.utils import timezone

from config.api.models import IdempotencyRecord
from entities.revisions import revisions_prune
from jobs.models import (
    Experiment,
    ExperimentLog,
    ExperimentResult,
    ExperimentStatus,
    Run,
    RunItem,
    RunLog,
    RunStatus,
    ScheduleFire,
    TriggerType,
    Wait,
)
from jobs.waits.base import WaitKind, kinds


class Batch(NamedTuple):
    """What one pruner's batch did: rows deleted, and whether it stopped at its limit (there
    may be more to delete)."""

    deleted: int
    more: bool


Pruner = Callable[..., Batch]  # (*, now: datetime, limit: int) -> Batch


def run_parts(run_id: str) -> list[QuerySet]:
    """What a run owns, in the order it is deleted (rows that point at others first): each
    kind of wait's records of it, its waits, logs, items and schedule fires. The run's row
    and its job go last, once all of these are gone."""
    return [
        *(records for kind in kinds for records in kind.run_records(run_id)),
        Wait.objects.filter(run_id=run_id),
        RunLog.objects.filter(run_id=run_id),
        RunItem.objects.filter(run_id=run_id),
        ScheduleFire.objects.filter(run_id=run_id),
    ]


RUN_ROWS = 2  # the run's row and its job's
RUNS_PER_BATCH = 100


def _delete_some(rows: QuerySet, limit: int) -> int:
    """Delete at most `limit` of `rows`; returns how many were deleted."""
    ids = list(rows.order_by().values_list("pk", flat=True)[:limit])
    if not ids:
        return 0
    return rows.model.objects.filter(pk__in=ids).delete()[0]


def runs_prunable(*, now: datetime) -> QuerySet:
    """Ended runs that ended more than RUNS_KEEP_DAYS ago (runs ended before their end was
    recorded: made before then), oldest first, that no open retry reads."""
    cutoff = now - timedelta(days=settings.RUNS_KEEP_DAYS)
    open_retry = Run.objects.filter(retry_of=OuterRef("pk"), status__in=RunStatus.open())
    return (
        Run.objects.filter(status__in=RunStatus.ended())
        .filter(Q(completed_at__lt=cutoff) | Q(completed_at__isnull=True, created_at__lt=cutoff))
        .exclude(Exists(open_retry))
        .order_by("pk")
    )


def runs_prune(*, now: datetime, limit: int) -> Batch:
    """Delete up to `limit` rows of old ended runs, the oldest runs first: their parts in
    `run_parts` order, then each run whose parts are all gone."""
    deleted = 0
    with transaction.atomic():
        runs = list(
            runs_prunable(now=now)
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("pk", flat=True)[:RUNS_PER_BATCH]
        )
        for run_id in runs:
            for part in run_parts(run_id):
                deleted += _delete_some(part, limit - deleted)
                if deleted >= limit:
                    return Batch(deleted, more=True)
            if limit - deleted < RUN_ROWS:  # the run and its job go together, next time
                return Batch(deleted, more=True)
            # Its job cascades; retries of it keep their own rows (`retry_of` set null).
            deleted += Run.objects.filter(pk=run_id).delete()[0]
    return Batch(deleted, more=len(runs) == RUNS_PER_BATCH)


def experiments_prune(*, now: datetime, limit: int) -> Batch:
    """Delete up to `limit` rows of experiments ended more than RUNS_KEEP_DAYS ago, oldest
    first: their results and log lines, then each experiment whose rows are all gone (its
    job cascades)."""
    cutoff = now - timedelta(days=settings.RUNS_KEEP_DAYS)
    deleted = 0
    with transaction.atomic():
        experiments = list(
            Experiment.objects.filter(status__in=ExperimentStatus.ended(), completed_at__lt=cutoff)
            .order_by("pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:RUNS_PER_BATCH]
        )
        for experiment_id in experiments:
            for rows in (ExperimentResult, ExperimentLog):
                deleted += _delete_some(
                    rows.objects.filter(experiment_id=experiment_id), limit - deleted
                )
            if limit - deleted < RUN_ROWS:  # the experiment and its job, next time
                return Batch(deleted, more=True)
            deleted += Experiment.objects.filter(pk=experiment_id).delete()[0]
    return Batch(deleted, more=len(experiments) == RUNS_PER_BATCH)


def idempotency_records_prune(*, now: datetime, limit: int) -> Batch:
    """Delete up to `limit` idempotency records older than IDEMPOTENCY_KEEP_HOURS."""
    cutoff = now - timedelta(hours=settings.IDEMPOTENCY_KEEP_HOURS)
    with transaction.atomic():
        deleted = _delete_some(IdempotencyRecord.objects.filter(created_at__lt=cutoff), limit)
    return Batch(deleted, more=deleted >= limit)


def counted(pruner: Callable[..., int]) -> Pruner:
    """A pruner that returns only the rows it deleted (one of a lower layer, which cannot
    name `Batch`): it may have more left while its batch was full."""

    @wraps(pruner)
    def batch(*, now: datetime, limit: int) -> Batch:
        deleted = pruner(now=now, limit=limit)
        return Batch(deleted, more=deleted >= limit)

    return batch


def entity_revisions_prune(*, now: datetime, limit: int) -> Batch:
    """Entity revisions (`entities.revisions.revisions_prune`), but, whatever their age,
    those of runs still open (a run's revisions of an entity go together, and an open one
    may yet make its last: a revert undoes the run from its first) and those of runs an
    open revert is reverting (pruned under it, its later chunks skipped their entities as
    no longer kept: half the run reverted)."""
    open_runs = Run.objects.filter(status__in=RunStatus.open())
    # Never a null among them: `NOT IN` a list holding a null keeps every revision.
    reverted = open_runs.filter(
        trigger__type=TriggerType.REVERT, trigger__runId__isnull=False
    ).values(reverted_id=KT("trigger__runId"))
    deleted = revisions_prune(now=now, limit=limit, held_runs=(open_runs.values("pk"), reverted))
    return Batch(deleted, more=deleted >= limit)


PRUNERS: list[Pruner] = [
    runs_prune,
    experiments_prune,
    idempotency_records_prune,
    entity_revisions_prune,
]


def _kind_pruner(kind: WaitKind) -> Pruner:
    def prune(*, now: datetime, limit: int) -> int:
        return kind.prune(now=now, limit=limit)

    prune.__name__ = f"waits_{kind.name}_prune"
    return counted(prune)


def pruners() -> list[Pruner]:
    """`PRUNERS`, then each kind of wait's (`WaitKind.prune`), named `waits_<kind>_prune`."""
    return [*PRUNERS, *(_kind_pruner(kind) for kind in kinds)]


class Pruned(NamedTuple):
    rows: dict[str, int]  # pruner's name -> rows it deleted in this batch
    more: bool  # some pruner stopped at its limit: there may be more left


def retention_prune(*, now: datetime | None = None, limit: int | None = None) -> Pruned:
    """One batch of every pruner, each in its own transaction."""
    now = now or timezone.now()
    limit = limit or settings.RETENTION_BATCH_ROWS
    batches = {pruner.__name__: pruner(now=now, limit=limit) for pruner in pruners()}
    return Pruned(
        {name: batch.deleted for name, batch in batches.items()},
        any(batch.more for batch in batches.values()),
    )
