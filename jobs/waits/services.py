"""The engine's side of waiting outside a chunk: resolve waits, queue resolved entities
again (together, in chunks), cancel and expire them. Kinds of wait call `waits_resolve`;
a cancel's batches (`jobs.cancel`), celery beat and the resume task call the rest."""

from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Max
from django.db.models.fields.json import KeyTextTransform
from django.utils import timezone

from config.bulk import rows_update
from jobs import queue
from jobs.item_rows import run_chunk_size
from jobs.models import ItemStatus, Run, RunItem, RunLog, RunStatus, Wait, WaitStatus
from jobs.waits.base import kinds
from workflows.usage import ZERO, Usage


def runs_lock(*, run_ids) -> dict[str, bool]:
    """Lock runs' rows (in id order) and say, for each, whether it goes on: open, and no
    cancel asked. `run_ids` may be a subquery. Everything that changes waits locks their runs
    first (a decision, a resume, a cancel's batch, a chunk parking entities), so these never
    deadlock and a cancel is seen by all or none."""
    return {
        pk: status in RunStatus.open() and cancel_requested_at is None
        for pk, status, cancel_requested_at in Run.objects.select_for_update()
        .filter(pk__in=run_ids)
        .order_by("pk")
        .values_list("pk", "status", "cancel_requested_at")
    }


def waits_resolve(
    *, wait_ids: list[str], run_ids, resolution: dict, now: datetime | None = None
) -> int:
    """Resolve the waits named (of the runs `run_ids`) that still wait, all alike; returns
    how many. Call inside a transaction that has locked their runs (`runs_lock`).

    Their entities are not queued one by one: the first resolution of a run since its last
    resume asks for one resume task, WAIT_RESUME_DELAY_S later, which queues every wait of
    the run resolved by then; 1,000 decisions in a burst become a few chunk tasks."""
    now = now or timezone.now()
    resolved = Wait.objects.filter(pk__any=wait_ids, status=WaitStatus.WAITING).update(
        status=WaitStatus.RESOLVED, resolution=resolution, resolved_at=now
    )
    _resume_request(run_ids, now)
    return resolved


def waits_resolve_each(*, resolutions: dict[str, dict], run_ids, now: datetime | None = None):
    """`waits_resolve` with a resolution of its own for each wait (wait id -> resolution):
    a provider batch's answers. One statement per 1,000 waits; returns how many."""
    now = now or timezone.now()
    written = rows_update(
        Wait,
        ({"id": pk, "resolution": resolution} for pk, resolution in resolutions.items()),
        match=["id"],
        copy=["resolution"],
        assign={"status": WaitStatus.RESOLVED, "resolved_at": now},
        where={"status": WaitStatus.WAITING},
        returning=["id"],
    )
    _resume_request(run_ids, now)
    return len(written)


def _resume_request(run_ids, now: datetime) -> None:
    unrequested = list(
        Run.objects.filter(pk__in=set(run_ids), resume_requested_at__isnull=True).values_list(
            "pk", flat=True
        )
    )
    Run.objects.filter(pk__in=unrequested).update(resume_requested_at=now)
    for run_id in unrequested:
        transaction.on_commit(partial(_enqueue_resume, run_id))


def _enqueue_resume(run_id: str) -> None:
    queue.waits_resume_enqueue(run_id, countdown=settings.WAIT_RESUME_DELAY_S)


@transaction.atomic
def run_waits_resume(*, run_id: str) -> int:
    """Queue again every resolved wait's entity of the run, in new chunks of the run's chunk size
    (items `pending`, resuming at the step after their wait under a fresh lease); returns
    how many. Safe to run twice: a wait is resumed once."""
    goes_on = runs_lock(run_ids=[run_id]).get(run_id)
    if goes_on is None:
        return 0
    Run.objects.filter(pk=run_id).update(resume_requested_at=None)
    if not goes_on:
        return 0  # a cancel ends the run's waiting items
    item_ids = sorted(
        _parked_on(run_id).filter(status=WaitStatus.RESOLVED).values_list("item_id", flat=True)
    )
    if not item_ids:
        return 0
    size = run_chunk_size(Run.objects.select_related("workflow_version").get(pk=run_id))
    first = (RunItem.objects.filter(run_id=run_id).aggregate(last=Max("chunk"))["last"] or 0) + 1
    for index, start in enumerate(range(0, len(item_ids), size)):  # one statement per chunk
        RunItem.objects.filter(pk__any=item_ids[start : start + size]).update(
            status=ItemStatus.PENDING, chunk=first + index
        )
    Run.objects.filter(pk=run_id).update(
        waiting=F("waiting") - len(item_ids), heartbeat_at=timezone.now()
    )
    chunks = range(first, first + (len(item_ids) + size - 1) // size)
    transaction.on_commit(partial(queue.chunks_enqueue, run_id, chunks))
    return len(item_ids)


def _parked_on(run_id: str):
    """The waits the run's items are parked on now: a wait whose item is `waiting` with this
    wait's id in its checkpoint. (A resolved wait is not written again when its item is
    resumed: the item's status says so, and a later wait of the same item replaces the id.)"""
    return (
        Wait.objects.filter(run_id=run_id, item__status=ItemStatus.WAITING)
        .alias(current=KeyTextTransform("wait", "item__state"))
        .filter(current=F("pk"))
    )


def waits_cancel(*, run_id: str, item_ids: list[int], now: datetime) -> int:
    """End these waiting items of a run being cancelled `cancelled`, with the waits they are
    parked on and the kinds' records of those (a pending review becomes `cancelled`, a provider
    batch is told); call under the run's lock, the items locked. Returns how many ended.

    Each item keeps the usage its entity had, with what its wait's model calls used (a
    resolved wait's answer not applied yet, a provider batch's earlier attempts). The run's
    totals counted all of that already, when the entity was parked and when the batch's
    answers were collected, so nothing is added to them here."""
    items = list(
        RunItem.objects.filter(pk__any=item_ids, status=ItemStatus.WAITING).values_list(
            "pk", "state__usage", "state__wait"
        )
    )
    wait_ids = [wait_id for _, _, wait_id in items if wait_id]
    waits = {
        pk: (kind, status, Usage.of(usage))
        for pk, kind, status, usage in Wait.objects.filter(pk__any=wait_ids).values_list(
            "pk", "kind", "status", "resolution__usage"
        )
    }
    spent: dict[str, Usage] = {}
    for name in sorted({kind for kind, _, _ in waits.values()}):
        unresolved = [
            pk
            for pk, (kind, status, _) in waits.items()
            if kind == name and status == WaitStatus.WAITING
        ]
        if unresolved:
            spent.update(kinds.get(name).cancel(run_id=run_id, wait_ids=unresolved))
    Wait.objects.filter(pk__any=wait_ids).update(status=WaitStatus.CANCELLED)
    rows = []
    for pk, usage, wait_id in items:
        _, status, resolved = waits.get(wait_id, ("", "", ZERO))
        more = resolved if status == WaitStatus.RESOLVED else spent.get(wait_id, ZERO)
        usage = usage or {}
        rows.append({"id": pk, "usage": {**usage, **(Usage.of(usage) + more).stored()}})
    rows_update(
        RunItem,
        rows,
        match=["id"],
        copy=["usage"],
        assign={"status": ItemStatus.CANCELLED, "completed_at": now, "state": None},
    )
    return len(rows)


def waits_expire() -> int:
    """Celery beat: every kind resolves the waits whose time ran out; returns how many."""
    now = timezone.now()
    return sum(kind.expire(now=now) for kind in kinds)


def waits_resume_lost(*, lost_after: timedelta | None = None) -> int:
    """Ask again for the resume of runs whose resume task was asked for long ago and has not
    run (its message was lost); returns how many runs."""
    lost_after = lost_after or timedelta(seconds=settings.RUN_STALL_AFTER_S)
    now = timezone.now()
    runs = list(
        Run.objects.filter(
            status__in=RunStatus.open(), resume_requested_at__lt=now - lost_after
        ).values_list("pk", flat=True)
    )
    for run_id in runs:
        with transaction.atomic():
            if Run.objects.filter(pk=run_id, resume_requested_at__lt=now - lost_after).update(
                resume_requested_at=now
            ):
                RunLog.objects.create(
                    run_id=run_id,
                    level=RunLog.Level.WARNING,
                    message="Resolved waits were not resumed in time: queued their resume again.",
                )
                transaction.on_commit(partial(_enqueue_resume, run_id))
    return len(runs)
