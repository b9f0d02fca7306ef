"""Stalled-run recovery: runs that stopped moving (their messages lost with a broker that
restarted without persistence, or their worker gone past the broker's redelivery) get their
unfinished chunks queued again, by celery beat every minute."""

from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from jobs import queue
from jobs.models import ItemStatus, Run, RunItem, RunLog, RunStatus


def runs_resume_stalled(*, stalled_after: timedelta | None = None) -> int:
    """Queue again the unfinished chunks of runs that show no progress for `stalled_after`
    (RUN_STALL_AFTER_S): their messages were lost (a broker restarted without persistence)
    or their worker vanished past the broker's redelivery. Chunks are idempotent, so a chunk
    still being worked on loses nothing but time. A run whose unfinished entities all wait
    (for a review, ...) is not stalled: nothing is queued for it. Returns the number of
    chunks queued."""
    stalled_after = stalled_after or timedelta(seconds=settings.RUN_STALL_AFTER_S)
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
                        message=f"No progress for {int(stalled_after.total_seconds())}s: "
                        "queued the making of its items again.",
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
                message=f"No progress for {int(stalled_after.total_seconds())}s: "
                f"queued {len(chunks)} unfinished chunks again.",
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
