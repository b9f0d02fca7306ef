"""The `ai_batch` kind's Celery tasks: ids in, a service call, a retry policy; safe to
deliver twice. Loaded with the engine's tasks (`jobs/tasks.py` imports every kind's `tasks`
module); polling needs no task of its own: it is the kind's tick (`kind.py`)."""

from celery import shared_task
from django.db import DatabaseError, InterfaceError

from jobs.queue import DURABLE
from jobs.waits.ai_batch.queue import CANCEL_AI_BATCH, SUBMIT_AI_BATCH
from jobs.waits.ai_batch.services import ai_batch_cancel, ai_batch_submit


@shared_task(name=SUBMIT_AI_BATCH, **DURABLE)
def submit_ai_batch(batch_id: str) -> None:
    """Send a batch a chunk recorded to its provider (or answer its few retries live)."""
    ai_batch_submit(batch_id=batch_id)


@shared_task(
    name=CANCEL_AI_BATCH,
    acks_late=True,
    autoretry_for=(DatabaseError, InterfaceError),
    retry_backoff=True,
    max_retries=20,
)
def cancel_ai_batch(batch_id: str) -> None:
    """Tell the provider a cancelled run's batch is no longer wanted."""
    ai_batch_cancel(batch_id=batch_id)
