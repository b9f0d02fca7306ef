"""An experiment (two versions of one workflow over a sample of entities, in shadow mode), its
results, one row per entity with both sides and every scorer's verdict, and its log."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from config.api.ids import ID_LENGTH, id_default
from jobs.models.logs import LogEntry
from jobs.models.runs import RunStatus
from workflows.models import Workflow, WorkflowVersion
from workflows.usage import Usage

# An experiment moves through a run's statuses, but for `failed`: one whose entities failed,
# or whose budget ran out, ends `completed` with what it found (its `error` says why).
ExperimentStatus = RunStatus
EXPERIMENT_STATUSES = [(value, label) for value, label in RunStatus.choices if value != "failed"]


# What only its workers read: the sample's ids (up to EXPERIMENT_MAX_ENTITIES, a third of
# a megabyte of JSON) and its chunks' deliveries. Reads of experiments for a list, a page
# or their jobs defer them.
WORKERS_ONLY = ("entity_ids", "chunk_deliveries")


class Experiment(models.Model):
    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("exp"), editable=False
    )
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="experiments")
    baseline = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="+")
    candidate = models.ForeignKey(WorkflowVersion, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        max_length=16, choices=EXPERIMENT_STATUSES, default=ExperimentStatus.PENDING
    )
    # The sampled entities, in the order their chunks take them (at most
    # EXPERIMENT_MAX_ENTITIES: a list is bounded).
    entity_ids = models.JSONField(default=list)
    scorers = models.JSONField(default=list)
    chunk_size = models.PositiveIntegerField(default=20)
    total = models.PositiveIntegerField(default=0)
    # Entities with a result row (incremented in the database as each row is written).
    done = models.PositiveIntegerField(default=0)
    budget_max_tokens = models.PositiveBigIntegerField(null=True, blank=True)
    budget_max_cost_nano_usd = models.PositiveBigIntegerField(null=True, blank=True)
    # Every model call of both sides and of the judges, counted as each call finishes.
    spent_tokens = models.PositiveBigIntegerField(default=0)
    spent_cost_nano_usd = models.PositiveBigIntegerField(default=0)
    budget_reached_at = models.DateTimeField(null=True, blank=True)
    # What every call of both sides and the judges used (its job's `usage`), named as
    # `workflows.usage.Usage`'s fields.
    input_tokens = models.PositiveBigIntegerField(default=0)
    cached_input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cost_nano_usd = models.PositiveBigIntegerField(default=0)
    unpriced_calls = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Its `arms` and `scores` as the API shows them, stored once it has ended (and again
    # after each human pick), so a list of experiments does not read every result row.
    summary = models.JSONField(null=True, blank=True, editable=False)
    # Last sign of progress (a chunk started, a step of a side, a chunk ended): an open
    # experiment without one for RUN_STALL_AFTER_S has its unfinished chunks queued again.
    heartbeat_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The deliveries of each chunk that had entities left to run, and when the last one
    # started ({"3": {"count": 2, "at": "<ISO time>"}}; a key per chunk at most): past
    # RUN_MAX_ATTEMPTS, its entities are given up instead of run again, once the last one
    # started RUN_STALL_AFTER_S ago (it may still be running until then).
    chunk_deliveries = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        indexes = [models.Index(fields=["workflow", "-id"], name="experiment_workflow_newest")]

    def __str__(self) -> str:
        return self.id

    @property
    def is_ended(self) -> bool:
        return self.status in ExperimentStatus.ended()

    @property
    def usage(self) -> Usage:
        return Usage(**{name: getattr(self, name) for name in Usage.__dataclass_fields__})


class ExperimentResult(models.Model):
    """One entity of an experiment: each side as it ran (`baseline`, `candidate`: outcome,
    error, changes, step outputs, usage, seconds) and each scorer's verdict."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="results")
    # No foreign key: an entity deleted since keeps its result (it was read, not written).
    entity_id = models.CharField(max_length=ID_LENGTH)
    position = models.PositiveIntegerField()  # in the experiment's sample
    baseline = models.JSONField()
    candidate = models.JSONField()
    verdicts = models.JSONField(default=list)
    # What the judges' calls on this entity used (Usage's stored shape).
    judge_usage = models.JSONField(default=dict)
    # The two sides' outcomes, errors or changes differ.
    changed = models.BooleanField(default=False)
    # The candidate failed where the baseline did not, lost a pairwise verdict, or scored
    # lower (failed a rule the baseline passed, or a lower judge score).
    regressed = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            # A redelivered chunk writes no entity twice.
            models.UniqueConstraint(
                fields=["experiment", "entity_id"], name="experiment_entity_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.entity_id}"


class SideStatus(models.TextChoices):
    WAITING = "waiting"  # parked at a batch-mode step: its provider batch has not answered
    RESOLVED = "resolved"  # answered (`resolution`): a worker continues it at its next step
    ENDED = "ended"  # done (`side`): the entity's other side has not ended yet


class ExperimentSide(models.Model):
    """One side of one entity of an experiment that did not end in one go: parked at an
    `ai_generate` step in batch mode (`waiting`, its working copy in `checkpoint`, holding
    no worker) until its provider batch answers it (`resolved`: this row's id is its
    request's `custom_id`), then continued by a worker; or ended (`side`, as the result row
    will hold it) while the entity's other side waits. Once both ended, the entity's result
    row is written and its sides deleted, in one transaction (`jobs.experiments.batches`)."""

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("exs"), editable=False
    )
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="sides")
    entity_id = models.CharField(max_length=ID_LENGTH)
    position = models.PositiveIntegerField()
    arm = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=SideStatus.choices)
    # The parked working copy (`jobs.experiments.batches.checkpoint_of`), while not ended.
    checkpoint = models.JSONField(null=True, blank=True)
    side = models.JSONField(null=True, blank=True)
    resolution = models.JSONField(null=True, blank=True)  # a `Resolution` as stored
    # The task that acts on it: the batch that answered it (its resume task's key), or the
    # chunk or batch that ended it; and that task's claims of it (its deliveries' writes
    # are conditional on theirs).
    task_key = models.CharField(max_length=ID_LENGTH + 16, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)  # by the last of those claims
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "entity_id", "arm"], name="experiment_side_once"
            )
        ]
        indexes = [models.Index(fields=["experiment", "status"], name="experiment_side_status")]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.entity_id}:{self.arm}"


class ExperimentLog(LogEntry):
    """A line of an experiment's log: what its results do not say (its provider batches'
    ends and retries, its budget reached, entities given up), as a run's log says it."""

    # Indexed by the indexes below (their first column).
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="logs", db_index=False
    )

    class Meta:
        indexes = [
            models.Index(fields=["experiment", "-id"], name="explog_newest"),
            models.Index(fields=["experiment", "level", "-id"], name="explog_level_newest"),
            models.Index(fields=["experiment", "entity_id", "-id"], name="explog_entity_newest"),
        ]
