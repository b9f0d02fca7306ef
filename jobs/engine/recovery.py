"""Stalled-run recovery: runs that stopped moving (their messages lost with a broker that
restarted without persistence, or their worker gone past the broker's redelivery) get their
unfinished chunks queued again, and ended runs their callbacks still owed, by celery beat
every minute."""

from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import queue
from jobs.models import ItemStatus, Run, RunItem, RunLog, RunStatus


def runs_resume_stalled(*, stalled_after: timedelta | None = None, why: str = "") -> int:
    """Queue again the unfinished chunks of runs that show no progress for `stalled_after`
    (RUN_STALL_AFTER_S): their messages were lost (a broker restarted without persistence)
    or their worker vanished past the broker's redelivery. Chunks are idempotent, so a chunk
    still being worked on loses nothing but time. A run whose unfinished entities all wait
    (for a review, ...) is not stalled: nothing is queued for it. Returns the number of
    chunks queued."""
    stalled_after = stalled_after or timedelta(seconds=settings.RUN_STALL_AFTER_S)
    why = why or f"No progress for {int(stalled_after.total_seconds())}s"
    now = timezone.now()
    cutoff = now - stalled_after
    queued = 0
    stalled = Run.objects.filter(status__in=RunStatus.open()).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    )
    for run_id, total in stalled.values_list("pk", "total"):
        if total is None:  # a run over a filter whose items are not all made
            with transaction.atomic():
                if _take_resume(run_id, cutoff, now):
                    RunLog.objects.create(
                        run_id=run_id,
                        level=RunLog.Level.WARNING,
                        message=f"{why}: queued the making of its items again.",
                    )
                    transaction.on_commit(partial(queue.items_make_enqueue, run_id))
            continue
        chunks = sorted(
            set(
                RunItem.objects.filter(
                    run_id=run_id, status__in=[ItemStatus.PENDING, ItemStatus.RUNNING]
                ).values_list("chunk", flat=True)
            )
        )
        if not chunks:
            continue  # every entity left is waiting: no task is meant to be working on it
        with transaction.atomic():
            # Take the resume: only one beat (or caller) re-queues a stalled run per period.
            if not _take_resume(run_id, cutoff, now):
                continue
            RunLog.objects.create(
                run_id=run_id,
                level=RunLog.Level.WARNING,
                message=f"{why}: queued {len(chunks)} unfinished chunks again.",
            )
            transaction.on_commit(partial(queue.chunks_enqueue, run_id, chunks))
        queued += len(chunks)
    return queued


def _take_resume(run_id: str, cutoff, now) -> bool:
    """Take the resume: only one beat (or caller) re-queues a stalled run per period."""
    return bool(
        Run.objects.filter(pk=run_id)
        .filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True))
        .update(heartbeat_at=now)
    )


OVERDUE_CALLBACKS_MAX = 100  # per beat; the next takes the rest


def runs_callbacks_resend(*, stalled_after: timedelta | None = None) -> int:
    """Queue again the callbacks of ended runs still owed `stalled_after` (RUN_STALL_AFTER_S)
    after they were due or last queued: the message the run's end sent was lost (a broker's
    blip as it was published, a broker restarted without persistence, a worker gone past the
    redelivery). Longer than a send can take with its retries, so a send under way is not
    doubled. Each is taken by moving its due time (one beat per period); returns how many."""
    stalled_after = stalled_after or timedelta(seconds=settings.RUN_STALL_AFTER_S)
    now = timezone.now()
    run_ids = list(
        Run.objects.filter(callback_due_at__lt=now - stalled_after)
        .order_by("callback_due_at")
        .values_list("pk", flat=True)[:OVERDUE_CALLBACKS_MAX]
    )
    queued = 0
    for run_id in run_ids:
        with transaction.atomic():
            taken = Run.objects.filter(pk=run_id, callback_due_at__lt=now - stalled_after).update(
                callback_due_at=now
            )
            if not taken:
                continue  # sent meanwhile, or another beat took it
            RunLog.objects.create(
                run_id=run_id,
                level=RunLog.Level.WARNING,
                message="The callback was not sent: queued it again.",
            )
            transaction.on_commit(partial(queue.callback_enqueue, run_id))
        queued += 1
    return queued
