"""The `ai_batch` kind of wait: a provider's batch job answering the waits one chunk parked
at one `ai_generate` step, and each wait's request in it. A batch belongs to a run (its
requests are its entities' waits) or to an experiment (its requests are the experiment's
parked sides, `jobs.experiments.batches`): its `owner` (`owners`)."""

from django.db import models
from django.utils import timezone

from config.api.ids import ID_LENGTH, id_default
from jobs.models.runs import Run
from jobs.models.waits import Wait


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
    # Exactly one of the two. Indexed by `aibatch_run_newest` (its first column).
    run = models.ForeignKey(
        Run, null=True, blank=True, on_delete=models.CASCADE, related_name="batches", db_index=False
    )
    experiment = models.ForeignKey(
        "jobs.Experiment",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="batches",
    )
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
        constraints = [
            models.CheckConstraint(
                condition=models.Q(run__isnull=False, experiment__isnull=True)
                | models.Q(run__isnull=True, experiment__isnull=False),
                name="aibatch_run_or_experiment",
            )
        ]

    def __str__(self) -> str:
        return self.id


class AiBatchRequest(models.Model):
    """The model request of one `ai_batch` wait, the batch it is in now, and what its earlier
    attempts used. Its id is its `custom_id` in the provider's batch: a run's wait's id (and
    `wait` that wait), or an experiment's parked side's id (no `wait`)."""

    id = models.CharField(primary_key=True, max_length=ID_LENGTH, editable=False)
    wait = models.OneToOneField(
        Wait, null=True, blank=True, on_delete=models.CASCADE, related_name="batch_request"
    )
    batch = models.ForeignKey(AiBatch, on_delete=models.CASCADE, related_name="requests")
    request = models.JSONField(help_text="What the step asked: provider, request, outputField.")
    attempts = models.PositiveSmallIntegerField(default=1, help_text="Submissions so far.")
    corrected = models.BooleanField(
        default=False, help_text="Sent again with the corrective prompt (an invalid JSON answer)."
    )
    usage = models.JSONField(default=dict, blank=True, help_text="Of its earlier attempts.")

    def __str__(self) -> str:
        return self.id
