"""What each tick of a workflow's schedule trigger did."""

from django.db import models
from django.utils import timezone

from jobs.models.runs import Run
from workflows.models import Workflow


class ScheduleFire(models.Model):
    """One tick of a workflow's schedule trigger and what came of it. Unique per (workflow,
    trigger, tick): a fire delivered twice for the same tick finds its row and starts nothing."""

    class Outcome(models.TextChoices):
        STARTED = "started"
        SKIPPED = "skipped"  # the run this schedule started before is still going
        EMPTY = "empty"  # nothing matched the filter at fire time
        REFUSED = "refused"  # more than RUN_MAX_ENTITIES matched

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="fires")
    trigger_index = models.PositiveSmallIntegerField(help_text="Its place in `triggers`.")
    cron = models.CharField(max_length=255)
    tick = models.DateTimeField(help_text="The cron time this fire is for.")
    fired_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    run = models.ForeignKey(
        Run,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The run started, or the one still going that made this tick skip.",
    )
    message = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "trigger_index", "tick"], name="schedule_fire_once_per_tick"
            )
        ]
        ordering = ["-tick"]
        # The fires' list, newest first (the admin's order, `id` its tie-break), is its first
        # rows: without it a page sorted every fire kept (one a tick per schedule trigger).
        indexes = [models.Index(fields=["-tick", "-id"], name="schedule_fire_newest")]

    def __str__(self) -> str:
        return f"{self.workflow_id} #{self.trigger_index} at {self.tick:%Y-%m-%d %H:%M}"
