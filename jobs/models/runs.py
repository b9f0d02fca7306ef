"""A run (one execution of one workflow version over a set of entities) and its Job, the
background-job face of a run for the Jobs API (its status and progress are the run's)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from config.api.ids import ID_LENGTH, id_default
from workflows.models import Workflow, WorkflowVersion
from workflows.usage import Usage


class RunStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def ended(cls) -> list[str]:
        return [cls.COMPLETED, cls.FAILED, cls.CANCELLED]

    @classmethod
    def open(cls) -> list[str]:
        return [cls.PENDING, cls.RUNNING]


def api_trigger() -> dict:
    return {"type": "api"}


class TriggerType(models.TextChoices):
    """What started a run: `trigger.type`, with details beside it (`runId`, `cron`...)."""

    API = "api"
    ENTITY_CREATED = "entity.created"
    ENTITY_UPDATED = "entity.updated"
    SCHEDULE = "schedule"
    RETRY = "retry"
    REVERT = "revert"


class Run(models.Model):
    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("run"), editable=False
    )
    # Indexed by `run_workflow_newest` (its first column).
    workflow = models.ForeignKey(
        Workflow, on_delete=models.PROTECT, related_name="runs", db_index=False
    )
    workflow_version = models.ForeignKey(
        WorkflowVersion, on_delete=models.PROTECT, related_name="runs"
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    # Counters are only ever changed by increments computed in the database (`completed =
    # completed + n`) in one UPDATE, so concurrent chunks never lose an increment.
    # Null while a run over a filter is still making its items (jobs/filter_runs.py).
    total = models.PositiveIntegerField(null=True, blank=True)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    # Of the completed, those left as they were: stopped by a condition, left out because an
    # open run of the workflow holds them, or (a revert) changed since the reverted run. The
    # database default lets processes on the code before it keep making runs during a deploy.
    skipped = models.PositiveIntegerField(default=0, db_default=0)
    # Entities parked at a step now (their items `waiting`): not part of the sum that ends
    # the run, so a run stays `running` while any entity waits.
    waiting = models.PositiveIntegerField(default=0)
    callback_url = models.CharField(max_length=2000, blank=True)  # checked by the API
    # Signs the callback (Standard Webhooks); never shown. The database default lets
    # processes on the code before it keep making runs during a deploy.
    callback_secret = models.CharField(
        max_length=500, blank=True, default="", db_default="", editable=False
    )
    # Set when the run ends with a callback to POST, cleared once its task has tried it: a
    # callback whose message was lost (the broker's blip as the run ended, a worker gone)
    # is queued again by beat (`jobs.engine.recovery.runs_callbacks_resend`).
    callback_due_at = models.DateTimeField(null=True, blank=True)
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.TextField(blank=True)
    trigger = models.JSONField(
        default=api_trigger, help_text='What started the run: {"type": "api" | "schedule" | ...}.'
    )
    # A run over a filter: what it covers, and how far making its items has got (entity ids
    # in order: the next batch starts after `items_cursor`).
    filter = models.JSONField(null=True, blank=True)
    items_limit = models.PositiveIntegerField(null=True, blank=True)
    items_cursor = models.CharField(max_length=ID_LENGTH, blank=True, editable=False)
    items_made = models.PositiveIntegerField(default=0, editable=False)
    # Entities per chunk, fixed when the run starts (workflows/steps/chunking.py): the items'
    # chunks, a filter run's later batches and the chunks of resumed waits all use it. Null
    # on runs made before it was stored: theirs is computed from the version's steps.
    chunk_size = models.PositiveIntegerField(null=True, blank=True, editable=False)
    # Token usage summed over the run's items (incremented like the counters).
    input_tokens = models.PositiveBigIntegerField(default=0)  # cached ones included
    cached_input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_nano_usd = models.PositiveBigIntegerField(default=0, help_text="Of the priced calls.")
    unpriced_calls = models.PositiveIntegerField(
        default=0, help_text="Calls to a model without a known price: the run's cost is unknown."
    )
    # The budget (null: none), and what every call of the run spent so far, counted as each
    # call finishes (so every worker sees it; a dead delivery's calls count too).
    budget_max_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    budget_max_cost_nano_usd = models.PositiveBigIntegerField(null=True, blank=True)
    spent_tokens = models.PositiveBigIntegerField(default=0)
    spent_cost_nano_usd = models.PositiveBigIntegerField(default=0)
    budget_reached_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of progress: a chunk claimed or finished, or a step still working.",
    )
    # A cancel asked (jobs/cancel.py): the run stays open until no item can move, then ends
    # `cancelled`; `cancel_cursor` is the item id up to which its items were ended.
    cancel_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    cancel_cursor = models.PositiveBigIntegerField(default=0, editable=False)
    resume_requested_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set while a task is queued to resume the run's resolved waits, so decisions "
        "arriving in a burst resume together.",
    )

    class Meta:
        indexes = [
            models.Index(fields=["workflow", "-id"], name="run_workflow_newest"),
            models.Index(fields=["status", "-id"], name="run_status_newest"),
            models.Index(
                fields=["callback_due_at"],
                name="run_callback_due",
                condition=models.Q(callback_due_at__isnull=False),
            ),
        ]
        constraints = [
            # A run is retried once (its retry inherits what is left of its budget; retry
            # the retry to go on): concurrent retries of one run start one (jobs/retries.py).
            models.UniqueConstraint(fields=["retry_of"], name="run_retried_once"),
        ]
        # `/metrics` (jobs/metrics.py): a `view_` permission, so read-only keys have it.
        permissions = [("view_metrics", "Can read the Prometheus metrics (/metrics)")]

    def __str__(self) -> str:
        return self.id

    @property
    def is_ended(self) -> bool:
        return self.status in RunStatus.ended()

    @property
    def cancelling(self) -> bool:
        """A cancel was asked and the run has not ended yet (its status is still open)."""
        return self.cancel_requested_at is not None and not self.is_ended

    @property
    def usage(self) -> Usage:
        """What the run's model calls used: its entities that ended, those waiting now, and
        its provider batches' answers (counted when collected)."""
        return Usage(**{name: getattr(self, name) for name in Usage.__dataclass_fields__})

    @property
    def cost_usd(self) -> float | None:
        """None while any call's price is unknown: a partial sum would be a guess."""
        return self.usage.cost_usd


class Job(models.Model):
    """The background job behind a run, or an experiment (`jobs/experiments`). Status and
    progress are read from the run (the experiment)."""

    class Type(models.TextChoices):
        WORKFLOW_RUN = "workflow_run"
        EXPERIMENT = "experiment"

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("job"), editable=False
    )
    type = models.CharField(max_length=32, choices=Type.choices, default=Type.WORKFLOW_RUN)
    # Exactly one of the two, by `type`.
    run = models.OneToOneField(
        Run, null=True, blank=True, on_delete=models.CASCADE, related_name="job"
    )
    experiment = models.OneToOneField(
        "jobs.Experiment", null=True, blank=True, on_delete=models.CASCADE, related_name="job"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(type="workflow_run", run__isnull=False, experiment__isnull=True)
                    | models.Q(type="experiment", run__isnull=True, experiment__isnull=False)
                ),
                name="job_run_or_experiment",
            )
        ]

    def __str__(self) -> str:
        return self.id
