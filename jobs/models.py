"""Run records, kept apart from the definitions in `workflows`.

A Run is one execution of one workflow version over a set of entities; each entity has a
RunItem (its status, checkpoint and error); a Job is the background-job face of a run for the
Jobs API (its status and progress are the run's: one source of truth); RunLog holds its log.
A Wait is an entity parked at a step until something outside the run resolves it; a Review is
the first kind of wait (a person approves or rejects what the run made); an AiBatch is a
provider's batch job answering the `ai_batch` waits of one chunk at one `ai_generate` step.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from config.api.ids import ID_LENGTH, id_default
from workflows.models import Workflow, WorkflowVersion
from workflows.steps.runtime import changes_apply
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
    # Entities parked at a step now (their items `waiting`): not part of the sum that ends
    # the run, so a run stays `running` while any entity waits.
    waiting = models.PositiveIntegerField(default=0)
    callback_url = models.CharField(max_length=2000, blank=True)  # checked by the API
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
    """The background job behind a run. Status and progress are read from the run."""

    class Type(models.TextChoices):
        WORKFLOW_RUN = "workflow_run"

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("job"), editable=False
    )
    type = models.CharField(max_length=32, choices=Type.choices, default=Type.WORKFLOW_RUN)
    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="job")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return self.id


class ItemStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"
    WAITING = "waiting"  # parked at a step (`step_id`) with its checkpoint, on no worker


class RunItem(models.Model):
    """One entity in one run: its status, where it stopped, and its checkpoint."""

    # Indexed by the indexes below (their first column): every item is written three times
    # per run, so an index of its own would cost on each write and serve no query. Not
    # checked by the database either: items are inserted only by `run_start`, in the
    # transaction that creates their run, and runs are not deleted (the ORM would cascade).
    # A checked key costs a trigger per item at commit, a quarter of dispatching a run.
    run = models.ForeignKey(
        Run,
        on_delete=models.CASCADE,
        related_name="items",
        db_index=False,
        db_constraint=False,
    )
    # A plain id, not a foreign key: the run's history outlives a deleted entity.
    entity_id = models.CharField(max_length=ID_LENGTH)
    chunk = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    step_id = models.CharField(max_length=64, blank=True)
    next_step = models.PositiveSmallIntegerField(
        default=0, help_text="Checkpoint: the index of the next step to run."
    )
    state = models.JSONField(
        null=True,
        blank=True,
        help_text="Checkpoint: the working copy and step outputs after a side effect.",
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    usage = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "entity_id"], name="item_unique_entity"),
        ]
        # No index holds `status` or any other column a run changes, so on PostgreSQL the
        # claim and the outcome update an item in place (HOT, in the room fillfactor 50
        # leaves on each page) without writing a single index entry. Status filters scan the
        # run's items (up to RUN_MAX_ENTITIES) in `item_run_newest`, or walk
        # `item_unique_entity` in entity order (a large retry's batches).
        indexes = [
            models.Index(fields=["run", "chunk"], name="item_run_chunk"),
            models.Index(fields=["run", "-id"], name="item_run_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.run_id}/{self.entity_id}"


class RunLog(models.Model):
    class Level(models.TextChoices):
        DEBUG = "debug"
        INFO = "info"
        WARNING = "warning"
        ERROR = "error"

    # Indexed by the indexes below (their first column).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="logs", db_index=False)
    timestamp = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=8, choices=Level.choices, default=Level.INFO)
    message = models.TextField()
    entity_id = models.CharField(max_length=ID_LENGTH, blank=True)
    step_id = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["run", "-id"], name="log_run_newest"),
            models.Index(fields=["run", "level", "-id"], name="log_run_level_newest"),
            models.Index(fields=["run", "entity_id", "-id"], name="log_run_entity_newest"),
        ]

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:60]}"


class WaitStatus(models.TextChoices):
    WAITING = "waiting"  # parked, not resolved yet
    RESOLVED = "resolved"  # resolved; its item is queued again unless it still `waiting`
    CANCELLED = "cancelled"  # its run was cancelled before it was resumed


class Wait(models.Model):
    """An entity parked at a step of a run until something outside the run resolves it.

    The engine owns this row: it parks the item (`waiting`, its checkpoint holding this
    wait's id) and, once a kind of wait has resolved it, queues the item again. `resolution`
    says how the entity goes on, in the engine's terms: `{"outcome": "continue" | "stop" |
    "fail", "data": top-level keys merged into the working copy, "set": {field path: value}
    set in it, "output": the step's output, "usage": the model usage to add to the entity's,
    "error": why it failed, "log": a line for the run's log}`.
    """

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("wait"), editable=False
    )
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="waits", db_index=False)
    item = models.ForeignKey(
        RunItem, on_delete=models.CASCADE, related_name="waits", db_constraint=False
    )
    entity_id = models.CharField(max_length=ID_LENGTH)
    step_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=WaitStatus.choices, default=WaitStatus.WAITING)
    resolution = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["run", "status"], name="wait_run_status")]

    def __str__(self) -> str:
        return f"{self.kind} {self.id}"


class ReviewStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ReviewInstructions(models.Model):
    """The instructions of a run's reviews as rendered, each distinct text once per run: a
    step's instructions that do not depend on the entity are one row, not one per review.
    Deleted with its run (after its reviews: `jobs.retention`)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+", db_index=False)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the text, in hex.")
    text = models.TextField()

    class Meta:
        verbose_name_plural = "review instructions"
        constraints = [
            models.UniqueConstraint(fields=["run", "digest"], name="review_instructions_once")
        ]

    def __str__(self) -> str:
        return self.text[:60]


class Review(models.Model):
    """A person's review of what a run made of one entity, before the run goes on: the wait
    of a `review` step. What the step asked is stored as it was rendered for the entity;
    what the run proposes, as its changes to the entity (`changes`, `removed`), shown on the
    entity as stored (`proposed_on`), never as a copy of it."""

    class OnTimeout(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"

    class OnReject(models.TextChoices):
        STOP = "stop"
        FAIL = "fail"

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("rev"), editable=False
    )
    wait = models.OneToOneField(Wait, on_delete=models.CASCADE, related_name="review")
    # Indexed by `review_run_newest` (its first column).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="reviews", db_index=False)
    entity_id = models.CharField(max_length=ID_LENGTH)
    step_id = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.PENDING
    )
    # Shared by the run's reviews with the same text; no index or checked key: the run owns
    # both, and they are deleted together (a checked key would scan reviews per deletion).
    instructions = models.ForeignKey(
        ReviewInstructions,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    fields = models.JSONField(default=list, help_text="The field paths shown and editable.")
    group = models.CharField(
        max_length=150, blank=True, help_text="The Django group whose members may decide."
    )
    on_timeout = models.CharField(max_length=8, choices=OnTimeout.choices, default=OnTimeout.REJECT)
    on_reject = models.CharField(max_length=8, choices=OnReject.choices, default=OnReject.STOP)
    changes = models.JSONField(
        default=dict,
        blank=True,
        help_text="Top-level keys the run set (new or changed), with the reviewer's edits.",
    )
    removed = models.JSONField(default=list, blank=True, help_text="Top-level keys it removed.")
    edits = models.JSONField(null=True, blank=True, help_text="Top-level keys the reviewer set.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=150, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        permissions = [("decide_review", "Can approve or reject reviews")]
        indexes = [
            models.Index(fields=["status", "-id"], name="review_status_newest"),
            models.Index(fields=["run", "-id"], name="review_run_newest"),
            models.Index(fields=["entity_id", "-id"], name="review_entity_newest"),
            models.Index(
                fields=["expires_at"],
                name="review_pending_expiry",
                condition=models.Q(status="pending", expires_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.id

    def proposed_on(self, current: dict | None) -> dict:
        """The run's working copy as a review shows it: the entity as stored now (`current`,
        None once deleted) with the run's changes, which is what approving would commit
        (an edit made meanwhile to a key the run left alone stays)."""
        return changes_apply(dict(current or {}), self.changes, self.removed)


class AiBatchStatus(models.TextChoices):
    PENDING = "pending"  # recorded with its requests, not yet accepted by the provider
    IN_PROGRESS = "in_progress"  # submitted: polled by celery beat
    ENDED = "ended"  # results read and their waits resolved (retries went to a new batch)
    FAILED = "failed"  # the provider rejected the batch: its entities failed with the reason
    CANCELLING = "cancelling"  # the run was cancelled: the provider is being told
    CANCELLED = "cancelled"

    @classmethod
    def open(cls) -> list[str]:
        return [cls.PENDING, cls.IN_PROGRESS, cls.CANCELLING]


class AiBatch(models.Model):
    """One provider batch job: the requests of the `ai_batch` waits one chunk parked at one
    `ai_generate` step (or the retries of an earlier batch, `attempt` > 1).

    Recorded in the chunk's finishing transaction, submitted after it commits (or by the
    beat poll, once a dead submitter's `lease_until` passed) with its own id as the
    idempotency key, so a worker killed anywhere never submits the same requests twice."""

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("aib"), editable=False
    )
    # Indexed by `aibatch_run_newest` (its first column).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="batches", db_index=False)
    step_id = models.CharField(max_length=64)
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=200, blank=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    live = models.BooleanField(
        default=False,
        help_text="The few retries of a batch, answered by live calls instead of a new batch.",
    )
    status = models.CharField(
        max_length=16, choices=AiBatchStatus.choices, default=AiBatchStatus.PENDING
    )
    provider_batch_id = models.CharField(max_length=200, blank=True)
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0, help_text="As the provider counts them.")
    failed = models.PositiveIntegerField(default=0, help_text="As the provider counts them.")
    error = models.TextField(blank=True)
    lease_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker submits, polls or cancels it until then."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    submitted_at = models.DateTimeField(null=True, blank=True)
    polled_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "AI batches"
        ordering = ["-id"]  # newest first, as the run shows them
        indexes = [
            models.Index(fields=["run", "-id"], name="aibatch_run_newest"),
            models.Index(
                fields=["status"],
                name="aibatch_open",
                condition=models.Q(status__in=["pending", "in_progress", "cancelling"]),
            ),
        ]

    def __str__(self) -> str:
        return self.id


class AiBatchRequest(models.Model):
    """The model request of one `ai_batch` wait (its `custom_id` in the provider's batch is
    the wait's id), the batch it is in now, and what its earlier attempts used."""

    wait = models.OneToOneField(
        Wait, primary_key=True, on_delete=models.CASCADE, related_name="batch_request"
    )
    batch = models.ForeignKey(AiBatch, on_delete=models.CASCADE, related_name="requests")
    request = models.JSONField(help_text="What the step asked: provider, request, outputField.")
    attempts = models.PositiveSmallIntegerField(default=1, help_text="Submissions so far.")
    corrected = models.BooleanField(
        default=False, help_text="Sent again with the corrective prompt (an invalid JSON answer)."
    )
    usage = models.JSONField(default=dict, blank=True, help_text="Of its earlier attempts.")

    def __str__(self) -> str:
        return self.wait_id


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

    def __str__(self) -> str:
        return f"{self.workflow_id} #{self.trigger_index} at {self.tick:%Y-%m-%d %H:%M}"
