"""Putting the engine's work on the broker. The tasks (`jobs/tasks.py`) call the engine and
the services, so those name the tasks here instead of importing them: one import direction,
and the names are bound to the tasks in `jobs/tasks.py` (`name=`). A kind of wait names its
own tasks in its folder (`jobs/waits/ai_batch/queue.py`)."""

from celery import current_app
from django.db import DatabaseError, InterfaceError

RUN_CHUNK = "jobs.tasks.run_chunk"
SEND_RUN_CALLBACK = "jobs.tasks.send_run_callback"
MAKE_RUN_ITEMS = "jobs.tasks.make_run_items"
DISPATCH_TRIGGERS = "jobs.tasks.dispatch_triggers"
RESUME_WAITS = "jobs.tasks.resume_waits"
TICK_WAITS = "jobs.tasks.tick_waits"
PRUNE_OLD_RECORDS = "jobs.tasks.prune_old_records"
CANCEL_RUN = "jobs.tasks.cancel_run"
RUN_EXPERIMENT_CHUNK = "jobs.tasks.run_experiment_chunk"
RESUME_EXPERIMENT_SIDES = "jobs.tasks.resume_experiment_sides"

FIRE_SCHEDULE = "jobs.tasks.fire_schedule"  # sent by beat (PeriodicTask rows, jobs/schedules.py)

# The policy of a task that must outlive its worker and a database hiccup: acknowledged once
# done (a worker lost mid-task hands it to another), retried with backoff on database errors.
# Here, beside the names, so the tasks of a kind of wait (`jobs/waits/<kind>/tasks.py`) take
# it too.
DURABLE = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "ignore_result": True,
    "autoretry_for": (DatabaseError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 20,
}


def chunks_enqueue(run_id: str, chunks) -> None:
    for chunk in chunks:
        current_app.send_task(RUN_CHUNK, args=(run_id, chunk))


def experiment_chunks_enqueue(experiment_id: str, count: int = 0, *, chunks=()) -> None:
    """Its first `count` chunks, or those named."""
    for chunk in chunks or range(count):
        current_app.send_task(RUN_EXPERIMENT_CHUNK, args=(experiment_id, chunk))


def experiment_sides_resume_enqueue(experiment_id: str, key: str) -> None:
    current_app.send_task(RESUME_EXPERIMENT_SIDES, args=(experiment_id, key))


def callback_enqueue(run_id: str) -> None:
    # `owed`: send it only while the run owes it (a message of code before `callback_due_at`
    # carries no such flag, and is sent as it was).
    current_app.send_task(SEND_RUN_CALLBACK, args=(run_id,), kwargs={"owed": True})


def items_make_enqueue(run_id: str) -> None:
    current_app.send_task(MAKE_RUN_ITEMS, args=(run_id,))


def waits_resume_enqueue(run_id: str, *, countdown: float = 0) -> None:
    current_app.send_task(RESUME_WAITS, args=(run_id,), countdown=countdown)


def waits_tick_enqueue(kind: str, *, countdown: float = 0) -> None:
    current_app.send_task(TICK_WAITS, kwargs={"kind": kind}, countdown=countdown)


def retention_prune_enqueue() -> None:
    current_app.send_task(PRUNE_OLD_RECORDS)


def run_cancel_enqueue(run_id: str) -> None:
    current_app.send_task(CANCEL_RUN, args=(run_id,))
