"""Putting the `ai_batch` kind's work on the broker, by task name (as `jobs.queue` does for
the engine's tasks): its services and its kind queue what its tasks (`tasks.py`) run, without
importing them.

The names are those the tasks had in `jobs/tasks.py` before they moved into this folder:
messages queued by a release before the move are consumed by the tasks here."""

from celery import current_app

SUBMIT_AI_BATCH = "jobs.tasks.submit_ai_batch"
CANCEL_AI_BATCH = "jobs.tasks.cancel_ai_batch"


def ai_batch_submit_enqueue(batch_id: str) -> None:
    current_app.send_task(SUBMIT_AI_BATCH, args=(batch_id,))


def ai_batch_cancel_enqueue(batch_id: str) -> None:
    current_app.send_task(CANCEL_AI_BATCH, args=(batch_id,))
