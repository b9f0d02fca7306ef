"""The `ai_batch` kind's face in the API: a run's provider batch jobs, as the run shows them
(`GET /workflows/:id/runs/:id`, `batches`)."""

from rest_framework import serializers

from config.api.fields import TimestampField
from jobs.waits.ai_batch.models import AiBatch


class BatchCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Requests in the batch.")
    completed = serializers.IntegerField(help_text="Requests answered, as the provider counts.")
    failed = serializers.IntegerField(help_text="Requests that failed, as the provider counts.")


class RunBatchSerializer(serializers.ModelSerializer):
    """A provider batch job of the run (`ai_generate` in `mode: batch`): one per chunk and
    step, and one per round of retries (`attempt`; `live` when the few retries left were
    answered by live calls instead)."""

    stepId = serializers.CharField(source="step_id")
    providerBatchId = serializers.CharField(
        source="provider_batch_id",
        allow_null=True,
        help_text="The provider's id of the batch job; null until it is submitted (and for "
        "live retries).",
    )
    model = serializers.CharField(
        allow_null=True, help_text="The step's model; null for the provider's default."
    )
    counts = BatchCountsSerializer(source="*")
    error = serializers.CharField(
        allow_null=True, help_text="Why the provider rejected the batch, or null."
    )
    createdAt = TimestampField(source="created_at")
    endedAt = TimestampField(source="ended_at", allow_null=True)

    class Meta:
        model = AiBatch
        fields = [
            "id",
            "stepId",
            "provider",
            "model",
            "providerBatchId",
            "status",
            "attempt",
            "live",
            "counts",
            "error",
            "createdAt",
            "endedAt",
        ]

    def to_representation(self, instance):
        shown = super().to_representation(instance)
        shown["providerBatchId"] = shown["providerBatchId"] or None
        shown["error"] = shown["error"] or None
        shown["model"] = shown["model"] or None
        return shown
