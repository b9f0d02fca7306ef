from rest_framework import serializers

from config.api.fields import TimestampField
from config.api.serializers import StrictSerializer
from jobs.models import Job, Run, RunItem, RunLog, RunStatus
from workflows.outbound import url_problem


class ProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Total number of entities in the run.")
    completed = serializers.IntegerField(
        help_text="Entities that finished (a condition that stopped one counts it completed)."
    )
    failed = serializers.IntegerField(help_text="Entities that failed during execution.")
    cancelled = serializers.IntegerField(help_text="Entities left undone by a cancel.")
    waiting = serializers.IntegerField(
        help_text="Entities waiting now at a step (a review); the run stays running meanwhile."
    )


class UsageSerializer(serializers.Serializer):
    inputTokens = serializers.IntegerField(source="input_tokens")
    outputTokens = serializers.IntegerField(source="output_tokens")


class RunSerializer(serializers.ModelSerializer):
    progress = ProgressSerializer(source="*", read_only=True)
    usage = UsageSerializer(source="*", read_only=True, help_text="Tokens used by the run.")
    startedAt = TimestampField(
        source="started_at", allow_null=True, help_text="Timestamp (ms) when the run started."
    )
    completedAt = TimestampField(
        source="completed_at",
        allow_null=True,
        help_text="Timestamp (ms) when the run finished, or null.",
    )
    jobId = serializers.CharField(source="job.id", read_only=True)
    workflowId = serializers.CharField(source="workflow_id", read_only=True)
    workflowVersion = serializers.IntegerField(source="workflow_version.number", read_only=True)
    retryOf = serializers.CharField(source="retry_of_id", read_only=True, allow_null=True)
    createdAt = TimestampField(source="created_at")

    class Meta:
        model = Run
        fields = [
            "id",
            "status",
            "progress",
            "startedAt",
            "completedAt",
            "jobId",
            "workflowId",
            "workflowVersion",
            "retryOf",
            "usage",
            "createdAt",
        ]


class RunItemSerializer(serializers.ModelSerializer):
    entityId = serializers.CharField(source="entity_id")
    stepId = serializers.SerializerMethodField(help_text="Where the entity stopped or failed.")
    error = serializers.SerializerMethodField()
    startedAt = TimestampField(source="started_at", allow_null=True)
    completedAt = TimestampField(source="completed_at", allow_null=True)

    class Meta:
        model = RunItem
        fields = ["entityId", "status", "stepId", "error", "attempts", "startedAt", "completedAt"]

    def get_stepId(self, item) -> str | None:
        return item.step_id or None

    def get_error(self, item) -> str | None:
        return item.error or None


class IdListField(serializers.ListField):
    """A list of id strings, checked in one tight loop: a run names up to 10,000 ids, and a
    DRF child field per element costs more than storing the run."""

    child = serializers.CharField(max_length=64)

    def to_internal_value(self, data):
        if isinstance(data, str | dict) or not hasattr(data, "__iter__"):
            self.fail("not_a_list", input_type=type(data).__name__)
        data = list(data)
        errors = {
            index: ["Must be an id string of 1 to 64 characters."]
            for index, value in enumerate(data)
            if not isinstance(value, str) or not 0 < len(value) <= 64
        }
        if errors:
            raise serializers.ValidationError(errors)
        return data


class RunStartSerializer(StrictSerializer):
    entityIds = IdListField(
        allow_empty=True,
        help_text="Array of entity IDs to run the workflow on (1 to 10,000).",
    )
    callbackUrl = serializers.URLField(
        required=False, max_length=2000, help_text="POSTed the final run once it ends."
    )

    def validate_callbackUrl(self, value: str) -> str:
        problem = url_problem(value)  # a port that exists, no credentials
        if problem:
            raise serializers.ValidationError(problem)
        return value


class RunStartedSerializer(serializers.Serializer):
    jobId = serializers.CharField(help_text="The ID of the background job created for this run.")
    runId = serializers.CharField(help_text="The ID of the run.")


class RunItemQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=RunItem._meta.get_field("status").choices, required=False
    )


class JobSerializer(serializers.ModelSerializer):
    """The background job behind a run; status and progress are the run's."""

    status = serializers.ChoiceField(source="run.status", choices=RunStatus.choices, read_only=True)
    progress = ProgressSerializer(source="run", read_only=True)
    workflowId = serializers.CharField(source="run.workflow_id", read_only=True)
    runId = serializers.CharField(source="run_id", read_only=True)
    usage = UsageSerializer(source="run", read_only=True)
    createdAt = TimestampField(source="created_at")
    startedAt = TimestampField(source="run.started_at", allow_null=True)
    completedAt = TimestampField(source="run.completed_at", allow_null=True)
    error = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "type",
            "status",
            "progress",
            "workflowId",
            "runId",
            "usage",
            "createdAt",
            "startedAt",
            "completedAt",
            "error",
        ]

    def get_error(self, job) -> str | None:
        return job.run.error or None


class RunLogSerializer(serializers.ModelSerializer):
    id = serializers.SerializerMethodField()
    timestamp = TimestampField()
    entityId = serializers.SerializerMethodField()
    stepId = serializers.SerializerMethodField()

    class Meta:
        model = RunLog
        fields = ["id", "timestamp", "level", "message", "entityId", "stepId"]

    def get_id(self, log) -> str:
        return str(log.pk)

    def get_entityId(self, log) -> str | None:
        return log.entity_id or None

    def get_stepId(self, log) -> str | None:
        return log.step_id or None


class JobListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    workflowId = serializers.CharField(required=False)


class LogQuerySerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=RunLog.Level.choices, required=False)
    entityId = serializers.CharField(required=False)


class RunRetrySerializer(StrictSerializer):
    useLatestVersion = serializers.BooleanField(
        default=False,
        help_text="Run the workflow's current version instead of the one the original run used.",
    )
