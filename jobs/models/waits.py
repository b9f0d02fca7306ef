"""A Wait: an entity parked at a step of a run until something outside the run resolves it."""

from django.db import models
from django.utils import timezone

from config.api.ids import ID_LENGTH, id_default
from jobs.models.items import RunItem
from jobs.models.runs import Run


class WaitStatus(models.TextChoices):
    WAITING = "waiting"  # parked, not resolved yet
    RESOLVED = "resolved"  # resolved; its item is queued again unless it still `waiting`
    CANCELLED = "cancelled"  # its run was cancelled before it was resumed


class Wait(models.Model):
    """An entity parked at a step of a run until something outside the run resolves it.

    The engine owns this row (`jobs.engine.parking`): it parks the item (`waiting`, its
    checkpoint holding this wait's id) and, once a kind of wait has resolved it, queues the
    item again. `kind` names the kind (`jobs/waits/<kind>/`); `resolution` is how the entity
    goes on, a `workflows.steps.waits.Resolution` as stored.
    """

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("wait"), editable=False
    )
    # Indexed by `wait_run_status` (its first column). Not checked by the database, as the
    # run's items are not: waits are inserted only by the engine (`waits_park`), in the
    # transaction of a chunk that holds its run's items, and deleted with their run
    # (`jobs.retention`; the ORM would cascade). A checked key costs a trigger per wait at
    # commit, and each kind's row of it one more: a tenth of parking a chunk.
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, related_name="waits", db_index=False, db_constraint=False
    )
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
