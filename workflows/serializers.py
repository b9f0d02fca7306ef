from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.fields import TimestampField
from config.api.serializers import StrictSerializer
from workflows.models import Workflow, WorkflowVersion
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


@extend_schema_field(
    {
        "type": "array",
        "items": {"$ref": "#/components/schemas/StepRequest"},
        "minItems": 1,
        "maxItems": settings.WORKFLOW_MAX_STEPS,
    }
)
class StepsInputField(serializers.JSONField):
    """Steps as sent; checked against the step-type registry by the service, which names the
    exact path of each problem (1 to WORKFLOW_MAX_STEPS of them)."""


@extend_schema_field(TRIGGERS_SCHEMA)
class TriggersField(serializers.JSONField):
    """What starts the workflow by itself; checked by `workflows.triggers.triggers_clean`,
    which names the exact path of each problem."""


class WorkflowSerializer(serializers.ModelSerializer):
    """As the seed page documents, plus `version`, `entityTypeId`, `createdAt`, `updatedAt`."""

    entityTypeId = serializers.CharField(source="entity_type_id", read_only=True)
    latestVersion = serializers.IntegerField(
        source="latest_version",
        read_only=True,
        help_text="The newest version; newer than `version` while a draft waits to be published.",
    )
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
            "latestVersion",
            "entityTypeId",
            "createdAt",
            "updatedAt",
        ]
        extra_kwargs = {
            "version": {"help_text": "The live version: what runs, triggers and schedules execute."}
        }


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
        required=False,
        help_text="A new steps array makes a new version, live at once unless `draft`.",
    )
    draft = serializers.BooleanField(
        required=False,
        default=False,
        help_text="With `steps`: store the new version without making it live; publish it "
        "with `POST .../versions/:version/publish`.",
    )
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=1000,
        help_text="With `steps`: what the new version changes, and why.",
    )
    triggers = TriggersField(required=False, help_text="Replaces the workflow's triggers.")


def steps_shown(steps: list[dict]) -> list[dict]:
    """Stored steps as the API shows them: write-only config values (secrets) hidden."""
    return [
        {**step, "config": registry.get(step["type"]).shown_config(step["config"])}
        if step["type"] in registry
        else step
        for step in steps
    ]


@extend_schema_field({"type": "array", "items": {"$ref": "#/components/schemas/Step"}})
class VersionStepsField(serializers.Field):
    def to_representation(self, steps):
        return steps_shown(steps)


class WorkflowVersionSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="number", read_only=True)
    createdAt = TimestampField(source="created_at")
    createdBy = serializers.SerializerMethodField(
        help_text="The username of who made it; null if unknown."
    )
    live = serializers.SerializerMethodField(
        help_text="Whether this is the version runs, triggers and schedules execute."
    )
    steps = VersionStepsField(read_only=True)

    class Meta:
        model = WorkflowVersion
        fields = ["version", "createdAt", "createdBy", "note", "live", "steps"]

    def get_createdBy(self, version) -> str | None:
        return version.created_by.get_username() if version.created_by else None

    def get_live(self, version) -> bool:
        return version.number == version.workflow.version


class VersionDiffQuerySerializer(serializers.Serializer):
    against = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=999_999_999,
        help_text="The version to compare with: the changes turn it into this one. Default: "
        "the version before this one (for version 1, none: every step is added).",
    )


class FieldChangeSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="`type`, `position` or a config path (`config.prompt`).")
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


class StepChangeSerializer(serializers.Serializer):
    stepId = serializers.CharField()
    change = serializers.ChoiceField(choices=["added", "removed", "moved", "changed"])
    before = serializers.JSONField(allow_null=True, help_text="The step as it was, or null.")
    after = serializers.JSONField(allow_null=True, help_text="The step as it is, or null.")
    fields = FieldChangeSerializer(many=True)


class VersionDiffSerializer(serializers.Serializer):
    changes = StepChangeSerializer(many=True)


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


class VersionPublishSerializer(StrictSerializer):
    expectedLiveVersion = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=999_999_999,
        help_text="Publish only if this version is still the live one (the one you compared "
        "with): else 409 `live_version_moved`, and nothing changes.",
    )


class WorkflowTestSerializer(StrictSerializer):
    entityId = serializers.CharField(max_length=64, help_text="The entity to test on.")
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=999_999_999,
        help_text="Test this version (a draft, say) instead of the live one.",
    )


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
