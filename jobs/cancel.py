"""Cancelling a run: asked at once, carried out in bounded batches in the background.

`run_cancel` (the API's `POST /jobs/:id/cancel`, the admin's button) records the request on
the run (`cancel_requested_at`, under the run's row lock) and returns; the run stays open,
its status unchanged, until no item can move any more, then ends `cancelled`
(`jobs.lifecycle`), its callback sent. From the moment the request commits:
- no step starts on any entity: workers see it within CANCEL_CHECK_INTERVAL_S and end the
  entities they hold `cancelled` (a chunk delivered later ends its entities at once);
- no entity is parked, no wait is resumed, decided or collected (all of these lock the run's
  row first and see the request), and a run over a filter makes no more items.

`run_cancel_step` ends the rest, one transaction per RUN_CANCEL_BATCH_SIZE items, walking the
run's items in id order from `cancel_cursor`: items no worker has claimed (`pending`) and
waiting ones (with their waits, pending reviews and provider batches: `jobs.waits`) end
`cancelled` and are counted. The request does the first batch (a run of a few hundred items
is cancelled before it answers); a task (`jobs.tasks.cancel_run`) does the others, queued
again after each. Items still `running` are left to the delivery holding them. If that
delivery's worker died, its chunk is redelivered (and ends them at once), or, with no sign of
progress for RUN_CANCEL_TAKEOVER_S, queued again by a later step; celery beat asks for a step
of every run whose cancel has not ended it (`runs_cancel_continue`), so a step lost with its
worker is taken up again.
"""

from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from config.api.errors import Conflict
from jobs import queue
from jobs.engine.parking import runs_lock, waits_cancel
from jobs.lifecycle import run_end_if_done
from jobs.models import ItemStatus, Run, RunItem, RunLog, RunStatus

# How long after a cancel beat looks at a run it has not ended yet.
CANCEL_RECHECK = timedelta(seconds=60)


def run_cancel(*, run_id: str, cancelled_by: str = "") -> Run:
    """Ask for the run's cancel and take its first batch; returns the run (ended
    `cancelled` if that batch was all there was to do). 409 if the run had ended. Asking
    again while the cancel goes on changes nothing."""
    by = f" by {cancelled_by}" if cancelled_by else ""
    with transaction.atomic():
        runs_lock(run_ids=[run_id], exclusive=True)
        run = Run.objects.get(pk=run_id)
        if run.is_ended:
            raise Conflict(f"The job has already ended ({run.status}).", code="job_ended")
        if run.cancel_requested_at is None:
            Run.objects.filter(pk=run_id).update(
                cancel_requested_at=timezone.now(), error=f"Cancelled{by}."
            )
            RunLog.objects.create(
                run_id=run_id,
                level=RunLog.Level.WARNING,
                message=f"Cancel asked{by}: no new step starts; the entities left end cancelled.",
            )
    if run_cancel_step(run_id=run_id):
        # On commit: a caller's transaction around this must commit before the task reads.
        transaction.on_commit(partial(queue.run_cancel_enqueue, run_id))
    return Run.objects.select_related("job").get(pk=run_id)


def run_cancel_step(*, run_id: str) -> bool:
    """End the next RUN_CANCEL_BATCH_SIZE items of a run being cancelled, in one transaction;
    returns whether items are left for another step. Safe to run twice, or at once: each step
    locks the run's row and goes on from the cursor the last one left."""
    size = settings.RUN_CANCEL_BATCH_SIZE
    now = timezone.now()
    with transaction.atomic():
        runs_lock(run_ids=[run_id], exclusive=True)
        run = Run.objects.filter(pk=run_id).first()
        if run is None or not run.cancelling:
            return False
        batch = list(
            RunItem.objects.filter(run_id=run_id, pk__gt=run.cancel_cursor)
            .order_by("pk")
            .values_list("pk", flat=True)[:size]
        )
        # Items a claim holds locked are becoming `running`: the claiming delivery ends them.
        unclaimed = dict(
            RunItem.objects.select_for_update(skip_locked=True)
            .filter(pk__any=batch, status__in=[ItemStatus.PENDING, ItemStatus.WAITING])
            .values_list("pk", "status")
        )
        pending = [pk for pk, status in unclaimed.items() if status == ItemStatus.PENDING]
        waiting = [pk for pk, status in unclaimed.items() if status == ItemStatus.WAITING]
        if pending:
            RunItem.objects.filter(pk__any=pending).update(
                status=ItemStatus.CANCELLED, completed_at=now
            )
        ended_waiting = waits_cancel(run_id=run_id, item_ids=waiting, now=now) if waiting else 0
        Run.objects.filter(pk=run_id).update(
            cancel_cursor=batch[-1] if batch else run.cancel_cursor,
            cancelled=F("cancelled") + len(pending) + ended_waiting,
            waiting=F("waiting") - ended_waiting,
        )
        if pending or ended_waiting:
            RunLog.objects.create(
                run_id=run_id,
                level=RunLog.Level.WARNING,
                message=f"Cancelled {len(pending)} entities not started"
                + (f" and {ended_waiting} waiting." if ended_waiting else "."),
            )
    if len(batch) == size:
        return True
    if not run_end_if_done(run_id=run_id):
        _take_over_running(run_id)
    return False


def _take_over_running(run_id: str) -> None:
    """Items still `running` after the last batch belong to a delivery. A live worker ends
    them within a second or so; one whose worker died leaves the run without progress: after
    RUN_CANCEL_TAKEOVER_S their chunks are queued again, and the new delivery (taking the
    lease) ends them `cancelled` at once."""
    cutoff = timezone.now() - timedelta(seconds=settings.RUN_CANCEL_TAKEOVER_S)
    with transaction.atomic():
        taken = Run.objects.filter(pk=run_id, status__in=RunStatus.open()).filter(
            Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True)
        )
        chunks = sorted(
            set(
                RunItem.objects.filter(run_id=run_id, status=ItemStatus.RUNNING).values_list(
                    "chunk", flat=True
                )
            )
        )
        # Moving the heartbeat takes the turn: one step queues them per period.
        if not chunks or not taken.update(heartbeat_at=timezone.now()):
            return
        RunLog.objects.create(
            run_id=run_id,
            level=RunLog.Level.WARNING,
            message=f"Cancelled run without progress for {settings.RUN_CANCEL_TAKEOVER_S}s: "
            f"queued {len(chunks)} chunks holding running entities again, to end them.",
        )
        transaction.on_commit(partial(queue.chunks_enqueue, run_id, chunks))


def runs_cancel_continue() -> int:
    """Celery beat: a step for every run whose cancel was asked over CANCEL_RECHECK ago and
    has not ended it (its task was lost with a worker, or its items wait for a dead
    delivery). Returns how many runs."""
    runs = list(
        Run.objects.filter(
            status__in=RunStatus.open(), cancel_requested_at__lt=timezone.now() - CANCEL_RECHECK
        ).values_list("pk", flat=True)
    )
    for run_id in runs:
        queue.run_cancel_enqueue(run_id)
    return len(runs)
