"""A run's log lines (`LogEntry`: what an experiment's have too)."""

from django.db import models
from django.utils import timezone

from config.api.ids import ID_LENGTH
from jobs.models.runs import Run


class LogEntry(models.Model):
    """A line of a log, of a run or of an experiment: when, how grave, what, and the entity
    and step it is about (blank: the whole run)."""

    class Level(models.TextChoices):
        DEBUG = "debug"
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    timestamp = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.TextField()
    entity_id = models.CharField(max_length=ID_LENGTH, blank=True)
    step_id = models.CharField(max_length=64, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:60]}"


class RunLog(LogEntry):
    # Indexed by the indexes below (their first column).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="logs", db_index=False)

    class Meta:
        indexes = [
            models.Index(fields=["run", "-id"], name="log_run_newest"),
            models.Index(fields=["run", "level", "-id"], name="log_run_level_newest"),
            models.Index(fields=["run", "entity_id", "-id"], name="log_run_entity_newest"),
        ]
