from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.fields import TimestampField
from config.api.serializers import StrictSerializer
from jobs.inputs import IdListField
from jobs.waits.review.models import Review, ReviewStatus
from jobs.waits.review.services import DECIDE_MAX_IDS, DECISIONS
from workflows.steps.runtime import get_path


class ChangeSerializer(serializers.Serializer):
    field = serializers.CharField()
    before = serializers.JSONField(allow_null=True, help_text="As the entity is stored now.")
    after = serializers.JSONField(allow_null=True, help_text="In the run's working copy.")


class ReviewSerializer(serializers.ModelSerializer):
    """A review; `current` is read from `context["current"]` (entity id -> data)."""

    runId = serializers.CharField(source="run_id")
    jobId = serializers.CharField(source="run.job.id")
    workflowId = serializers.CharField(source="run.workflow_id")
    stepId = serializers.CharField(source="step_id")
    entityId = serializers.CharField(source="entity_id")
    instructions = serializers.CharField(
        source="instructions_rendered", help_text="Rendered for this entity."
    )
    proposed = serializers.SerializerMethodField(
        help_text="The run's working copy (with edits made): the entity as stored now with "
        "the run's changes (only those once the entity is deleted)."
    )
    current = serializers.SerializerMethodField(help_text="The entity as stored now, or null.")
    changes = serializers.SerializerMethodField()
    createdAt = TimestampField(source="created_at")
    expiresAt = TimestampField(source="expires_at", allow_null=True)
    decidedAt = TimestampField(source="decided_at", allow_null=True)
    decidedBy = serializers.SerializerMethodField()
    comment = serializers.CharField()

    class Meta:
        model = Review
        fields = [
            "id",
            "status",
            "runId",
            "jobId",
            "workflowId",
            "stepId",
            "entityId",
            "instructions",
            "proposed",
            "current",
            "changes",
            "createdAt",
            "expiresAt",
            "decidedAt",
            "decidedBy",
            "comment",
        ]

    def get_current(self, review) -> dict | None:
        return self.context["current"].get(review.entity_id)

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_proposed(self, review) -> dict:
        return review.proposed_on(self.get_current(review))

    def get_decidedBy(self, review) -> str | None:
        return review.decided_by or None

    @staticmethod
    def changes_of(review: Review, current: dict | None) -> list[dict]:
        proposed = review.proposed_on(current)
        return [
            {
                "field": path,
                "before": get_path(current or {}, path),
                "after": get_path(proposed, path),
            }
            for path in review.fields
        ]

    @extend_schema_field(ChangeSerializer(many=True))
    def get_changes(self, review) -> list[dict]:
        return self.changes_of(review, self.get_current(review))


class ReviewListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=ReviewStatus.choices, required=False)
    runId = serializers.CharField(required=False, max_length=64)
    workflowId = serializers.CharField(required=False, max_length=64)
    entityId = serializers.CharField(required=False, max_length=64)


class ReviewApproveSerializer(StrictSerializer):
    data = serializers.DictField(
        required=False,
        help_text="Edits: top-level keys merged into the working copy, checked against the "
        "entity type's schema.",
    )
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class ReviewRejectSerializer(StrictSerializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class ReviewDecideSerializer(StrictSerializer):
    ids = IdListField(
        min_length=1,
        max_length=DECIDE_MAX_IDS,
        help_text=f"The reviews to decide (1 to {DECIDE_MAX_IDS}).",
    )
    decision = serializers.ChoiceField(choices=DECISIONS)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class SkippedSerializer(serializers.Serializer):
    id = serializers.CharField()
    reason = serializers.ChoiceField(choices=["not_found", "not_pending", "forbidden"])
    message = serializers.CharField()


class ReviewDecidedSerializer(serializers.Serializer):
    decided = serializers.ListField(child=serializers.CharField())
    skipped = SkippedSerializer(many=True)
