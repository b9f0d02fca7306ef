"""The `review` kind of wait: a person approves or rejects what the run made of an entity."""

from django.db import models
from django.utils import timezone

from config.api.ids import ID_LENGTH, id_default
from jobs.models.runs import Run
from jobs.models.waits import Wait
from workflows.steps.runtime import changes_apply


class ReviewStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class ReviewInstructions(models.Model):
    """The instructions of a run's reviews as rendered, each text that several reviews of a
    chunk read once per run: a step's instructions that do not depend on the entity are one
    row, not one per review (a text only one review of its chunk reads is stored with that
    review: `Review.instructions_text`). Deleted with its run (after its reviews:
    `jobs.retention`)."""

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
    # Neither key is checked by the database: a review is inserted with its wait, in the
    # transaction that parks it (`Wait.run` says why).
    wait = models.OneToOneField(
        Wait, on_delete=models.CASCADE, related_name="review", db_constraint=False
    )
    # Indexed by `review_run_newest` (its first column).
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="reviews", db_index=False, db_constraint=False
    )
    entity_id = models.CharField(max_length=ID_LENGTH)
    step_id = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.PENDING
    )
    # Shared by the run's reviews with the same text; no index or checked key: the run owns
    # both, and they are deleted together (a checked key would scan reviews per deletion).
    # None when the text is `instructions_text`: one no other review of its chunk read (a
    # text rendered from the entity), a row of its own would be one more write per review.
    instructions = models.ForeignKey(
        ReviewInstructions,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
        null=True,
        blank=True,
    )
    # db_default: a process still on the code before this column (a rolling deploy) parks
    # reviews without it.
    instructions_text = models.TextField(
        blank=True,
        default="",
        db_default="",
        help_text="The instructions, when not shared (`instructions` is then empty).",
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
    # The run's own proposal for the keys the reviewer edited ({"changes": {key: value},
    # "removed": [key]}; a key in neither the run left alone), which the edits replace in
    # `changes`: the audit shows what the run proposed next to what the reviewer decided.
    edited_proposal = models.JSONField(null=True, blank=True, editable=False)
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
            # A run's pending reviews (its page's link to them, the queue filtered by it),
            # without reading its decided ones: a row leaves it when decided.
            models.Index(
                fields=["run", "-id"],
                name="review_run_pending",
                condition=models.Q(status="pending"),
            ),
            models.Index(fields=["entity_id", "-id"], name="review_entity_newest"),
            models.Index(
                fields=["expires_at"],
                name="review_pending_expiry",
                condition=models.Q(status="pending", expires_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.id

    @property
    def instructions_rendered(self) -> str:
        """The instructions as rendered for this review, shared or its own."""
        if self.instructions_id is None:
            return self.instructions_text
        return self.instructions.text

    def proposed_on(self, current: dict | None) -> dict:
        """The run's working copy as a review shows it: the entity as stored now (`current`,
        None once deleted) with the run's changes, which is what approving would commit
        (an edit made meanwhile to a key the run left alone stays)."""
        return changes_apply(dict(current or {}), self.changes, self.removed)
