"""A RunItem: one entity in one run, its status, where it stopped and its checkpoint."""

from django.db import models

from config.api.ids import ID_LENGTH
from jobs.models.runs import Run


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
    # checked by the database either: items are inserted only by the run's start (in the
    # transaction that creates it) or by the making of its items in batches afterwards (a
    # run over a filter, a large retry, a revert: `jobs.filter_runs`), and deleted with it
    # (`jobs.retention`).
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
