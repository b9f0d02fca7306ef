"""An experiment's log (`ExperimentLog`): what its results do not say, written where it
happens, as a run's log is: its provider batches' ends, retries and problems (the batch
owner), its budget reached (once), and entities given up after their deliveries died."""

from django.utils import timezone

from jobs.experiments.models import Experiment, ExperimentLog
from jobs.models.logs import LogEntry

Level = LogEntry.Level


def experiment_log(
    experiment_id: str, level: str, message: str, *, entity_ids=(), step_id: str = ""
) -> None:
    """One line, or one per entity of `entity_ids`."""
    experiment_log_lines(
        experiment_id,
        [(level, message, entity_id) for entity_id in (entity_ids or [""])],
        step_id=step_id,
    )


def experiment_log_lines(
    experiment_id: str, lines: list[tuple[str, str, str]], *, step_id: str = "", now=None
) -> None:
    """Lines of (level, message, entity id or ""), at `now` (default: now)."""
    now = now or timezone.now()
    ExperimentLog.objects.bulk_create(
        [
            ExperimentLog(
                experiment_id=experiment_id,
                timestamp=now,
                level=level,
                message=message,
                entity_id=entity_id,
                step_id=step_id,
            )
            for level, message, entity_id in lines
        ],
        batch_size=1000,
    )


def budget_reached(experiment_id: str, message: str) -> None:
    """Mark the experiment's budget reached, and say so in its log the first time."""
    first = Experiment.objects.filter(pk=experiment_id, budget_reached_at=None).update(
        budget_reached_at=timezone.now()
    )
    if first:
        experiment_log(
            experiment_id,
            Level.WARNING,
            f"{message}: no new model call starts; the entities left fail.",
        )
