"""Celery tasks: ids in, a service call, a retry policy. Safe to deliver twice. The tasks of
a kind of wait live in its folder (`jobs/waits/<kind>/tasks.py`, named by its `tasks`) and
are loaded at the end of this module, which Celery finds in the `jobs` app."""

from importlib import import_module

from celery import shared_task
from celery.signals import task_revoked
from django.db import DatabaseError, InterfaceError

from config.metrics import WAIT_TICKS_DROPPED
from jobs import queue
from jobs.cancel import run_cancel_step, runs_cancel_continue
from jobs.engine.chunk import chunk_execute
from jobs.engine.recovery import runs_callbacks_resend, runs_resume_stalled
from jobs.engine.waits import run_waits_resume, waits_tick
from jobs.experiments.services import (
    experiment_chunk_execute,
    experiment_sides_resume,
    experiments_resume_stalled,
)
from jobs.filter_runs import run_items_make
from jobs.queue import DURABLE
from jobs.retention import retention_prune
from jobs.schedules import schedule_fire
from jobs.services import run_callback_send
from jobs.triggers import entity_events_dispatch
from jobs.waits.base import kinds


@shared_task(
    name=queue.RUN_CHUNK,
    **DURABLE,  # the run's items are its result; failures are still stored
)
def run_chunk(run_id: str, chunk: int) -> None:
    """Take one chunk of a run's entities through the workflow."""
    chunk_execute(run_id=run_id, chunk=chunk)


@shared_task(name=queue.RUN_EXPERIMENT_CHUNK, **DURABLE)
def run_experiment_chunk(experiment_id: str, chunk: int) -> None:
    """Both versions of an experiment over one chunk of its entities, in shadow mode."""
    experiment_chunk_execute(experiment_id=experiment_id, chunk=chunk)


@shared_task(name=queue.RESUME_EXPERIMENT_SIDES, **DURABLE)
def resume_experiment_sides(experiment_id: str, key: str) -> None:
    """Continue the sides of an experiment its provider batch `key` answered."""
    experiment_sides_resume(experiment_id=experiment_id, key=key)


@shared_task(
    name=queue.SEND_RUN_CALLBACK,
    acks_late=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    max_retries=5,
)
def send_run_callback(run_id: str, owed: bool = False) -> None:
    """POST the ended run to its `callbackUrl` (`owed`: only while the run owes it)."""
    run_callback_send(run_id=run_id, owed=owed)


@shared_task
def resume_stalled_runs() -> int:
    """Run by celery beat every minute: re-queue the chunks of runs and experiments that
    stopped moving, the cancels not finished yet and the callbacks owed. (A resume of
    resolved waits whose task was lost is taken over sooner, by the waits' tick.)"""
    return (
        runs_resume_stalled()
        + experiments_resume_stalled()
        + runs_cancel_continue()
        + runs_callbacks_resend()
    )


@shared_task(
    name=queue.CANCEL_RUN,
    **DURABLE,
)
def cancel_run(run_id: str) -> None:
    """End the next batch of a cancelled run's items; queued again while any are left."""
    if run_cancel_step(run_id=run_id):
        queue.run_cancel_enqueue(run_id)


@shared_task(
    name=queue.MAKE_RUN_ITEMS,
    **DURABLE,
)
def make_run_items(run_id: str) -> None:
    """Make the items of a run over a filter in batches, then queue its chunks."""
    run_items_make(run_id=run_id)


@shared_task(
    name=queue.DISPATCH_TRIGGERS,
    **DURABLE,
)
def dispatch_triggers() -> int:
    """Start the runs of workflow triggers for the entity events gathered (and, from beat,
    sweep the outbox for any whose dispatch was never queued)."""
    return entity_events_dispatch()


@shared_task(
    name=queue.RESUME_WAITS,
    acks_late=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    max_retries=20,
)
def resume_waits(run_id: str) -> int:
    """Queue again, in chunks, the run's entities whose waits were resolved."""
    return run_waits_resume(run_id=run_id)


# Nothing of a tick is stored, not even its failure (CELERY_TASK_STORE_ERRORS_EVEN_IF_IGNORED):
# one a second, an outage's dropped or failed ticks were a results row each. The worker's log
# has them.
@shared_task(name=queue.TICK_WAITS, ignore_result=True, store_errors_even_if_ignored=False)
def tick_waits(kind: str | None = None) -> int:
    """Run by celery beat every WAITS_TICK_S (every kind of wait), and when a kind asked
    for a tick at a time (`kind`): each kind resolves or moves on what is due."""
    return waits_tick(kind=kind)


@task_revoked.connect
def count_dropped_tick(sender=None, expired=False, **kwargs) -> None:
    """A tick the worker found past its expiry is dropped (Celery's `expires`): counted in
    /metrics, where an operator sees the waits worker was down or behind (it keeps no row)."""
    if expired and sender.name == queue.TICK_WAITS:
        WAIT_TICKS_DROPPED.inc()


@shared_task(
    name=queue.FIRE_SCHEDULE,
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=(DatabaseError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def fire_schedule(workflow_id: str, trigger_index: int, trigger_digest: str | None = None) -> None:
    """Sent by beat at a schedule trigger's cron time: start its run (once per tick). A
    PeriodicTask written before fires carried `trigger_digest` sends none."""
    schedule_fire(
        workflow_id=workflow_id, trigger_index=trigger_index, trigger_digest=trigger_digest
    )


@shared_task(
    name=queue.PRUNE_OLD_RECORDS,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(DatabaseError, InterfaceError),
    retry_backoff=True,
    max_retries=5,
)
def prune_old_records() -> None:
    """Run by celery beat every hour: delete one batch of what is past its retention (old
    ended runs with everything of theirs, expired idempotency records), and queue the next
    batch while more may be left."""
    if retention_prune().more:
        queue.retention_prune_enqueue()


for kind in kinds:  # every kind of wait's own tasks
    if kind.tasks:
        import_module(kind.tasks)
