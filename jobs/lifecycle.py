"""A run's status: every move of it is made here, and checked here, nowhere else.

    pending --(its first chunk starts)--> running
    pending | running --(no item can move: completed + failed + cancelled = total)-->
        `cancelled` if a cancel was asked, else `failed` if any entity failed, else `completed`

Each move is one conditional UPDATE from the states it may leave (`TRANSITIONS`), so of two
processes racing (the last two chunks, a chunk and the end of a filter run's items, a cancel's
last batch) one moves the run and the other finds it moved. What goes with a move is done
with it: `startedAt` when the run leaves `pending` (a run that ends without a chunk ever
starting, a filter run whose matches were all deleted, is started and ended at once), and on
the end `completedAt` (each from the clock of the process that moves the run, but never
before the time before it: machines' clocks differ a little), the error, the log line and,
once that commits, the `callbackUrl` POST.

A cancel is not a move: it is asked (`Run.cancel_requested_at`, `jobs.cancel`), the run stays
open while its items are ended, and it ends `cancelled` here, by the same rule as any run, once
no item is left that could move.
"""

from functools import partial

from django.db import transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from jobs import queue
from jobs.models import Run, RunLog, RunStatus

TRANSITIONS: dict[str, set[str]] = {
    RunStatus.PENDING: {
        RunStatus.RUNNING,
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
    },
    RunStatus.RUNNING: {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED},
}


def _move(run_id: str, to: str, **fields) -> bool:
    """Move the run to `to` if its status allows it; True for the call that moved it."""
    sources = [source for source, targets in TRANSITIONS.items() if to in targets]
    return bool(Run.objects.filter(pk=run_id, status__in=sources).update(status=to, **fields))


def not_before(field: str, now) -> Greatest:
    """`now`, or the row's `field` if that is later: a run (an experiment) is created, started
    and ended by processes on machines whose clocks differ a little, and its times must
    still be in order (a run served as completed before it started)."""
    return Greatest(Value(now, output_field=DateTimeField()), F(field))


def times_ended(now) -> dict:
    """A run's (an experiment's) `started_at` and `completed_at` as it ends at `now`: started
    at the latest then (one that never started, as it ends), completed no earlier than it
    started, whatever the clocks of the machines that started and end it."""
    started_at = Coalesce(F("started_at"), not_before("created_at", now))
    return {
        "started_at": started_at,
        "completed_at": Greatest(Value(now, output_field=DateTimeField()), started_at),
    }


def run_mark_running(*, run_id: str) -> bool:
    """pending -> running, once (a chunk started); True for the call that moved it."""
    if not _move(run_id, RunStatus.RUNNING, started_at=not_before("created_at", timezone.now())):
        return False
    RunLog.objects.create(run_id=run_id, message="Run started.")
    return True


def run_end_if_done(*, run_id: str) -> bool:
    """End the run once no item can move (completed + failed + cancelled = total, the total
    known): `cancelled` if a cancel was asked, else `failed` if any entity failed, else
    `completed`. True for the call that ended it.

    The counters tell: an item is counted in the transaction that ends it (and only the
    delivery holding its lease, or a cancel's batch, can end it), so they add up to `total`
    exactly when no item is pending, running or waiting."""
    run = Run.objects.only("total", "completed", "failed", "cancelled").filter(pk=run_id).first()
    if run is None or run.total is None or run.completed + run.failed + run.cancelled < run.total:
        return False
    with transaction.atomic():
        # Locked: a cancel asked meanwhile (it locks the row too) is seen, or comes after.
        run = Run.objects.select_for_update().get(pk=run_id)
        if run.is_ended:
            return False
        if run.cancel_requested_at is not None:
            status, level, error = RunStatus.CANCELLED, RunLog.Level.WARNING, run.error
        elif run.failed:
            status, level = RunStatus.FAILED, RunLog.Level.ERROR
            error = f"{run.failed} of {run.total} entities failed."
        else:
            status, level, error = RunStatus.COMPLETED, RunLog.Level.INFO, ""
        now = timezone.now()
        _move(
            run_id,
            status,
            **times_ended(now),
            error=error or "",
            callback_due_at=now if run.callback_url else None,
        )
        RunLog.objects.create(
            run_id=run_id,
            level=level,
            message=f"Run {status}: {run.completed} completed, {run.failed} failed, "
            f"{run.cancelled} cancelled of {run.total}.",
        )
        if run.callback_url:
            transaction.on_commit(partial(queue.callback_enqueue, run_id))
    return True
