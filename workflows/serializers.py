from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.fields import TimestampField
from config.api.serializers import StrictSerializer
from workflows.models import Workflow
from workflows.steps import registry
from workflows.triggers import TRIGGERS_SCHEMA


@extend_schema_field({"type": "array", "items": {"$ref": "#/components/schemas/Step"}})
class StepsField(serializers.Field):
    """Ordered steps, each `{id, type, config}`; typed per step type in the OpenAPI schema.
    Write-only config values (secrets) are never shown, only that they are set."""

    def to_representation(self, steps):
        return [
            {**step.as_dict(), "config": registry.get(step.type).shown_config(step.config)}
            for step in steps.all()
        ]


@extend_schema_field({"type": "array", "items": {"$ref": "#/components/schemas/StepRequest"}})
class StepsInputField(serializers.JSONField):
    """Steps as sent; checked against the step-type registry by the service, which names the
    exact path of each problem."""


@extend_schema_field(TRIGGERS_SCHEMA)
class TriggersField(serializers.JSONField):
    """What starts the workflow by itself; checked by `workflows.triggers.triggers_clean`,
    which names the exact path of each problem."""


class WorkflowSerializer(serializers.ModelSerializer):
    """As the seed page documents, plus `version`, `entityTypeId`, `createdAt`, `updatedAt`."""

    entityTypeId = serializers.CharField(source="entity_type_id", read_only=True)
    stepsCount = serializers.IntegerField(
        source="steps_count", read_only=True, help_text="Total number of steps in the workflow."
    )
    lastRunAt = TimestampField(
        source="last_run_at",
        allow_null=True,
        help_text="Timestamp (ms) of the most recent run, or null.",
    )
    createdAt = TimestampField(source="created_at")
    updatedAt = TimestampField(source="updated_at")

    class Meta:
        model = Workflow
        fields = [
            "id",
            "name",
            "description",
            "status",
            "stepsCount",
            "lastRunAt",
            "version",
            "entityTypeId",
            "createdAt",
            "updatedAt",
        ]


class WorkflowDetailSerializer(WorkflowSerializer):
    steps = StepsField(read_only=True, help_text="Ordered array of step configurations.")
    triggers = TriggersField(read_only=True, help_text="What starts the workflow by itself.")

    class Meta(WorkflowSerializer.Meta):
        fields = [*WorkflowSerializer.Meta.fields, "steps", "triggers"]


class WorkflowCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, help_text="Display name for the workflow.")
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    entityTypeId = serializers.CharField(
        max_length=64, help_text="The entity type this workflow operates on."
    )
    status = serializers.ChoiceField(
        choices=Workflow.Status.choices, required=False, default=Workflow.Status.ACTIVE
    )
    steps = StepsInputField(
        help_text="Ordered array of step configurations. Each step must "
        "include a `type` and `config` object."
    )
    triggers = TriggersField(required=False, help_text="What starts the workflow by itself.")


class WorkflowUpdateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    status = serializers.ChoiceField(choices=Workflow.Status.choices, required=False)
    steps = StepsInputField(
        required=False, help_text="A new steps array replaces the old one and makes a new version."
    )
    triggers = TriggersField(required=False, help_text="Replaces the workflow's triggers.")


class WorkflowListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Workflow.Status.choices, required=False)
    entityTypeId = serializers.CharField(required=False)


class StepTypeSerializer(serializers.Serializer):
    type = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    configSchema = serializers.DictField(
        source="config_schema", help_text="A JSON Schema for the step's config."
    )
    example = serializers.DictField(help_text="An example config.")


class WorkflowTestSerializer(StrictSerializer):
    entityId = serializers.CharField(max_length=64, help_text="The entity to test on.")


class StepOutcomeSerializer(serializers.Serializer):
    stepId = serializers.CharField()
    type = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=["completed", "failed", "stopped", "skipped"],
        help_text="`stopped`: a condition stopped the entity here; `skipped`: not reached.",
    )
    output = serializers.JSONField(
        allow_null=True, help_text="What the step produced, or would have sent."
    )
    error = serializers.CharField(allow_null=True)
    notes = serializers.ListField(
        child=serializers.CharField(),
        help_text="What the step logged for the entity (a retry; a batch-mode step answered "
        "live, as a test sends no batch).",
    )


class CallUsageSerializer(serializers.Serializer):
    """Model calls' usage: the same shape for a test, a run and a job."""

    inputTokens = serializers.IntegerField(help_text="Prompt tokens, cached ones included.")
    cachedInputTokens = serializers.IntegerField(
        help_text="Prompt tokens read from the provider's prompt cache (billed less)."
    )
    outputTokens = serializers.IntegerField()
    costUsd = serializers.FloatField(
        allow_null=True,
        help_text="In US dollars; null when a model's price is unknown (never a guess).",
    )


class WorkflowTestResultSerializer(serializers.Serializer):
    entityId = serializers.CharField()
    workflowVersion = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["completed", "skipped", "failed"])
    error = serializers.CharField(allow_null=True)
    steps = StepOutcomeSerializer(many=True)
    data = serializers.DictField(help_text="The working copy at the end (not committed).")
    usage = CallUsageSerializer(help_text="Tokens and cost of the model calls made.")
