"""The engine's side of waiting, as kinds of wait meet it; start here. A kind resolves its
waits (`waits_resolve`, `waits_resolve_each`, under `runs_lock`), asks for a tick at a time
(`waits_tick_at`) and is ticked with every other kind (`waits_tick`, celery beat); the
run's items show what they wait for (`waits_describe`). Resolved entities are queued again
in chunks at once, or by one resume task per run a moment later.

Parking the entities a step asked to wait, applying a resolution to a resumed entity,
queueing resolved entities again and cancelling a run's waits are the items' side,
`jobs.engine.parking`; the two functions of it kinds call are named here too (`__all__`).
"""

import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from config.bulk import pks_update, rows_update
from jobs import queue
from jobs.engine.parking import run_waits_resume, runs_lock, waits_requeue
from jobs.models import ItemStatus, Run, RunLog, RunStatus, Wait, WaitStatus
from jobs.waits.base import kinds
from workflows.steps.waits import Resolution

logger = logging.getLogger(__name__)

__all__ = [
    "run_waits_resume",
    "runs_lock",
    "waits_describe",
    "waits_resolve",
    "waits_resolve_each",
    "waits_resolve_sets",
    "waits_resume_overdue",
    "waits_tick",
    "waits_tick_at",
]


def waits_resolve(
    *, wait_ids: list[str], run_ids, resolution: Resolution, now: datetime | None = None
) -> int:
    """Resolve the waits named (of the runs `run_ids`) that still wait, all alike; returns
    how many. Call inside a transaction that has locked their runs (`runs_lock`).

    Their entities are not queued one by one. A run that got at least a chunk's worth of
    resolutions here (a bulk decision) has them queued at once, in chunks, by this
    transaction (`waits_requeue`); otherwise the first resolution of a run since its last
    resume asks for one resume task, WAIT_RESUME_DELAY_S later, which queues every wait of
    the run resolved by then, so that single decisions in a burst become a few chunks."""
    return waits_resolve_sets(sets=[(wait_ids, resolution)], run_ids=run_ids, now=now)[0]


def waits_resolve_sets(
    *, sets: list[tuple[list[str], Resolution]], run_ids, now: datetime | None = None
) -> list[int]:
    """`waits_resolve` for several sets of waits, each set resolved alike (an event's waits,
    per output field, for each event of a bulk send); returns how many of each set.

    Their entities are queued, or their runs' resumes asked, once for all the sets: that
    locks the runs' rows once, in id order. Resumed set by set, each set locked its own runs
    in turn, and two calls naming the same runs in other orders deadlocked."""
    now = now or timezone.now()
    resolved = [_waits_resolve_alike(sorted(ids), resolution, now) for ids, resolution in sets]
    _resume([row for rows in resolved for row in rows], run_ids, now)
    return [len(rows) for rows in resolved]


def _waits_resolve_alike(wait_ids: list[str], resolution: Resolution, now) -> list[tuple]:
    """(run id, item id) of the waits resolved."""
    return pks_update(
        Wait,
        wait_ids,
        assign={
            "status": WaitStatus.RESOLVED,
            "resolution": resolution.stored(),
            "resolved_at": now,
        },
        where={"status": WaitStatus.WAITING},
        returning=["run", "item"],
    )


def waits_resolve_each(
    *, resolutions: dict[str, Resolution], run_ids, now: datetime | None = None
) -> int:
    """`waits_resolve` with a resolution of its own for each wait (wait id -> resolution):
    a provider batch's answers. One statement per 1,000 waits; returns how many."""
    now = now or timezone.now()
    resolved = rows_update(
        Wait,
        ({"id": pk, "resolution": each.stored()} for pk, each in resolutions.items()),
        match=["id"],
        copy=["resolution"],
        assign={"status": WaitStatus.RESOLVED, "resolved_at": now},
        where={"status": WaitStatus.WAITING},
        returning=["run", "item"],
    )
    _resume(resolved, run_ids, now)
    return len(resolved)


def _resume(resolved: list[tuple[str, int]], run_ids, now: datetime) -> None:
    """Queue the items of waits just resolved ((run id, item id) each) at once where a run
    has a chunk's worth of them; ask for the delayed resume of the other runs."""
    items: dict[str, list[int]] = {}
    for run_id, item_id in resolved:
        items.setdefault(run_id, []).append(item_id)
    later = set(run_ids)
    if not (items or later):
        return
    # Every run's row is locked here, in id order, before any is written (`FOR NO KEY
    # UPDATE`, which the waits' `FOR KEY SHARE` locks do not wait for): requeueing a run
    # writes its row, and two callers naming the same runs but requeueing different ones
    # (a bulk send's events) would otherwise lock them in other orders.
    rows = {
        pk: (chunk_size, requested)
        for pk, chunk_size, requested in Run.objects.filter(pk__in=set(items) | later)
        .order_by("pk")
        .select_for_update(no_key=True)
        .values_list("pk", "chunk_size", "resume_requested_at")
    }
    for run_id, item_ids in sorted(items.items()):  # runs' turns taken in id order
        size = rows.get(run_id, (None, None))[0]
        if size and len(item_ids) >= size:
            waits_requeue(run_id=run_id, item_ids=item_ids, size=size, now=now)
            later.discard(run_id)
    _resume_request([pk for pk in sorted(later) if pk in rows and rows[pk][1] is None])


def _resume_request(unrequested: list[str]) -> None:
    """Ask for a resume of each run named, which had none asked for when its row was locked.

    The runs' rows are locked (by `_resume`) before reading whether a resume is asked: a
    resume task clears its request (an UPDATE of the same row) before it reads the resolved
    waits, so either it waits for this transaction and sees these waits, or this one waits
    for it and finds the request cleared and asks again. Read without the lock, a decision
    committing while a resume ran found the old request, and its waits were missed by that
    resume and asked of none (the run never ended)."""
    if not unrequested:
        return
    # The database's clock, which `waits_resume_overdue` reads too: the web machine deciding
    # and beat's tick run on machines whose clocks may differ by more than the lease.
    Run.objects.filter(pk__in=unrequested).update(resume_requested_at=Now())
    for run_id in unrequested:
        transaction.on_commit(partial(_enqueue_resume, run_id))


def _enqueue_resume(run_id: str) -> None:
    queue.waits_resume_enqueue(run_id, countdown=settings.WAIT_RESUME_DELAY_S)


def waits_tick(*, kind: str | None = None) -> int:
    """Tick every kind of wait (celery beat, every WAITS_TICK_S), or the one named (a tick
    a kind asked for at a time, `waits_tick_at`): each resolves or moves on what is due.
    Beat's tick also resumes the runs whose resume task is overdue (`waits_resume_overdue`).
    Returns how many waits or records they handled.

    A kind whose tick fails (a fault of its own, a provider's answer it cannot read) stops
    none of the others: each ticks, the overdue resumes are done, and the first failure is
    raised after them, so the task still shows it (and its log the others')."""
    now = timezone.now()
    ticked = [kinds.get(kind)] if kind else list(kinds)
    handled, failed = 0, None
    for each in ticked:
        try:
            handled += each.tick(now=now)
        except Exception as exc:
            logger.exception("The %r waits' tick failed; the other kinds tick on.", each.name)
            failed = failed or exc
    if not kind:
        handled += waits_resume_overdue()
    if failed is not None:
        raise failed
    return handled


def waits_tick_at(*, kind: str, when: datetime) -> None:
    """Ask for a tick of `kind` at `when` (after COMMIT), for a kind whose waits are due at a
    known time sooner than beat's next tick; beat's ticks stay the safety net."""
    countdown = max(0.0, (when - timezone.now()).total_seconds())
    transaction.on_commit(partial(queue.waits_tick_enqueue, kind, countdown=countdown))


OVERDUE_RUNS_MAX = 100  # per tick; the next tick takes the rest


def waits_resume_overdue() -> int:
    """Resume here the runs whose resume task (asked with a WAIT_RESUME_DELAY_S countdown)
    has not run WAIT_RESUME_LEASE_S past its time; returns how many runs it resumed. The
    time a resume was asked and the time now are both the database's: the lease is a few
    seconds, less than the clocks of the web machine that asked and of beat's may differ.

    Its message is held by a worker that died: a countdown message is held unacknowledged
    by the worker that will run it, and goes back to the broker only after the broker's
    visibility timeout (an hour), so a review's decision or an event whose resume was held
    by a SIGKILLed worker would wait for that. Ticks and resumes have a queue and a worker
    of their own (`waits`), so a resume that is due runs well within the lease unless its
    worker is gone. A resume under way holds its run's row (it clears the request in its
    transaction) and is skipped (`SKIP LOCKED`), as is a run another tick is resuming; a
    resume that runs after this one finds nothing left to queue."""
    overdue = Now() - timedelta(seconds=settings.WAIT_RESUME_DELAY_S + settings.WAIT_RESUME_LEASE_S)
    run_ids = list(
        Run.objects.filter(status__in=RunStatus.open(), resume_requested_at__lt=overdue)
        .order_by("resume_requested_at")
        .values_list("pk", flat=True)[:OVERDUE_RUNS_MAX]
    )
    resumed = 0
    for run_id in run_ids:
        with transaction.atomic():
            claimed = list(
                Run.objects.filter(pk=run_id, resume_requested_at__lt=overdue)
                .select_for_update(skip_locked=True, no_key=True)
                .values_list("pk", flat=True)
            )
            if not claimed:
                continue
            RunLog.objects.create(
                run_id=run_id,
                level=RunLog.Level.WARNING,
                message="The resume of resolved waits was overdue (its worker died, or the "
                "waits' queue is behind): the waits' tick resumed them.",
            )
            run_waits_resume(run_id=run_id)
            resumed += 1
    return resumed


def waits_describe(*, items, entity_data: bool) -> dict[int, dict]:
    """What each waiting item of `items` (a page of a run's items) waits for, by item id:
    `{"kind": ..., **what its kind says}` (`WaitKind.describe`); unless `entity_data` (the
    reader may read entities), the facts read from the entity's data (`entity_facts`) null."""
    parked = {
        item.state["wait"]: item.pk
        for item in items
        if item.status == ItemStatus.WAITING and item.state and item.state.get("wait")
    }
    if not parked:
        return {}
    by_kind: dict[str, list[str]] = {}
    for pk, kind in Wait.objects.filter(pk__in=list(parked)).values_list("pk", "kind"):
        by_kind.setdefault(kind, []).append(pk)
    described = {}
    for name, wait_ids in by_kind.items():
        kind = kinds.get(name) if name in kinds else None
        facts = kind.describe(wait_ids) if kind else {}
        hidden = dict.fromkeys(kind.entity_facts if kind and not entity_data else ())
        for wait_id in wait_ids:
            described[parked[wait_id]] = {"kind": name, **facts.get(wait_id, {}), **hidden}
    return described
