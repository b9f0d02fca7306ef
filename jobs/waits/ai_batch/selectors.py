"""Reading the `ai_batch` kind's records."""

from jobs.waits.ai_batch.models import AiBatch


def run_batches(*, run_id: str, limit: int) -> list[AiBatch]:
    """The run's provider batches, newest first (as its admin page lists them)."""
    return list(AiBatch.objects.filter(run_id=run_id).order_by("-pk")[:limit])


def experiment_batches(*, experiment_id: str, limit: int) -> list[AiBatch]:
    """An experiment's provider batches (its batch-mode sides'), newest first."""
    return list(AiBatch.objects.filter(experiment_id=experiment_id).order_by("-pk")[:limit])
