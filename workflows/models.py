from django.conf import settings
from django.db import models
from django.utils import timezone

from config.api.ids import ID_LENGTH, id_default
from entities.models import EntityType
from workflows.steps import step_type_choices


class Workflow(models.Model):
    """A definition: what to do to entities of one type. Runs live in `jobs`."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        DRAFT = "draft"
        ARCHIVED = "archived"

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("wf"), editable=False
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    entity_type = models.ForeignKey(EntityType, on_delete=models.PROTECT, related_name="workflows")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    version = models.PositiveIntegerField(
        default=1,
        editable=False,
        help_text="The live version: what runs, triggers and schedules execute.",
    )
    latest_version = models.PositiveIntegerField(
        default=1,
        editable=False,
        help_text="The newest version: goes up with every change of the steps, live or draft.",
    )
    # What starts the workflow by itself (checked by workflows.triggers.triggers_clean).
    triggers = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"on": "entity.created"}, {"on": "entity.updated", "fields": ["title"]}, '
        '{"on": "schedule", "cron": "0 3 * * *", "timezone": "UTC", "filter": {...}}]',
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    # Written by the run engine when it starts a run (jobs.services.run_start), so that the
    # definitions need not read the run records to show it.
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [models.Index(fields=["status", "-id"], name="workflow_status_newest")]

    def __str__(self) -> str:
        return self.name


class Step(models.Model):
    """One step of a workflow's current definition, in `position` order."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    step_id = models.CharField(
        max_length=64,
        help_text="The step's id within the workflow; templates read its output as `steps.<id>`.",
    )
    type = models.CharField(max_length=32, choices=step_type_choices)
    config = models.JSONField(default=dict)

    class Meta:
        ordering = ["workflow", "position"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "position"], name="step_unique_position"),
            models.UniqueConstraint(fields=["workflow", "step_id"], name="step_unique_id"),
        ]

    def __str__(self) -> str:
        return f"{self.step_id} ({self.type})"

    def as_dict(self) -> dict:
        return {"id": self.step_id, "type": self.type, "config": self.config}


class WorkflowVersion(models.Model):
    """An immutable snapshot of a workflow's steps. A run executes the version it started
    with, whatever is edited meanwhile. The live one is the workflow's `version`; a newer one
    is a draft until it is published."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    steps = models.JSONField(help_text='[{"id", "type", "config"}, ...] as they were.')
    note = models.CharField(max_length=1000, blank=True, help_text="What changed, and why.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workflow", "number"], name="version_unique_number"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id} v{self.number}"


class LocalBatch(models.Model):
    """A batch job of the `local` stand-in provider (`workflows.providers.local`): its
    requests, kept where every worker and web process sees them, so any of them can answer
    its status and results (computed from the requests, `AI_LOCAL_BATCH_DELAY_S` after
    submission). One row per idempotency key: a resubmission returns the same batch."""

    id = models.CharField(
        primary_key=True, max_length=ID_LENGTH, default=id_default("lbatch"), editable=False
    )
    idempotency_key = models.CharField(max_length=200, unique=True)
    requests = models.JSONField(help_text="[{customId, request}], request as GenerationRequest.")
    submitted_at = models.DateTimeField(default=timezone.now)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.id
