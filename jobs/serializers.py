"""What the API answers about runs, their items, logs and jobs. (What clients send is
`jobs/inputs.py`.)"""

from datetime import datetime

from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from config.api.fields import TimestampField, to_millis
from jobs.models import Job, Run, RunItem, RunLog, RunStatus, TriggerType
from jobs.waits.kinds import kinds
from workflows.pricing import usd_of


class ProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField(
        allow_null=True,
        help_text="Total number of entities in the run; null while a run over a filter (or a "
        "retry of more than 10,000 failed entities) is still making its items.",
    )
    completed = serializers.IntegerField(
        help_text="Entities that finished (a condition that stopped one counts it completed)."
    )
    failed = serializers.IntegerField(help_text="Entities that failed during execution.")
    cancelled = serializers.IntegerField(help_text="Entities left undone by a cancel.")
    skipped = serializers.IntegerField(
        help_text="Of the completed, entities left as they were: stopped by a condition, left "
        "out because an open run of the workflow holds them, or, in a revert, changed since "
        "the reverted run (so a revert reverted `completed - skipped`)."
    )
    waiting = serializers.IntegerField(
        help_text="Entities waiting now at a step (a review); the run stays running meanwhile."
    )


class UsageSerializer(serializers.Serializer):
    """A `workflows.usage.Usage`: what model calls used."""

    inputTokens = serializers.IntegerField(
        source="input_tokens", help_text="Prompt tokens, cached ones included."
    )
    cachedInputTokens = serializers.IntegerField(
        source="cached_input_tokens",
        help_text="Prompt tokens read from the provider's prompt cache (billed less).",
    )
    outputTokens = serializers.IntegerField(source="output_tokens")
    costUsd = serializers.FloatField(
        source="cost_usd",
        allow_null=True,
        help_text="In US dollars; null when a model's price is unknown (never a guess).",
    )


class TriggerSerializer(serializers.Serializer):
    """`type`, and what else tells the start apart: a retry's `runId`, a schedule's `cron`,
    an event's `depth` in a chain of triggers."""

    type = serializers.ChoiceField(choices=TriggerType.choices)
    runId = serializers.CharField(
        required=False, help_text="retry, revert: the run retried or reverted."
    )
    force = serializers.BooleanField(required=False, help_text="revert: forced over later edits.")
    cron = serializers.CharField(required=False, help_text="schedule: its cron expression.")
    depth = serializers.IntegerField(
        required=False, help_text="entity.*: runs of triggers before this one in the chain."
    )
    timezone = serializers.CharField(
        required=False, help_text="schedule: the time zone its cron is read in."
    )
    index = serializers.IntegerField(
        required=False, help_text="schedule: its place in the workflow's `triggers`."
    )
    tick = serializers.IntegerField(
        required=False, help_text="schedule: the time (ms) it fired for, as its cron gives it."
    )

    def to_representation(self, instance):
        return dict(instance)


CANCEL_REQUESTED_HELP = (
    "Timestamp (ms) when a cancel was asked, or null. The run stays `pending` or `running` "
    "while the cancel ends its entities in the background, then becomes `cancelled`."
)


# What each kind of wait adds to a run (`WaitKind.run_detail`: its provider batches): fields,
# shown after the run's usage and declared on a base of its serializer as if in its body, and
# the relations they read, which a queryset of runs prefetches (`RUN_PREFETCH`).
_WAIT_DETAILS = kinds.run_details()
RUN_WAIT_FIELDS = {name: f for detail in _WAIT_DETAILS for name, f in detail.fields.items()}
RUN_PREFETCH = [each for detail in _WAIT_DETAILS for each in detail.prefetch]
RunWaitFields = type("RunWaitFields", (serializers.Serializer,), dict(RUN_WAIT_FIELDS))


class RunBudgetSerializer(serializers.Serializer):
    """A run's budget and what its calls spent against it; null when it has none."""

    maxTokens = serializers.IntegerField(source="budget_max_tokens", allow_null=True)
    maxCostUsd = serializers.SerializerMethodField()
    spentTokens = serializers.IntegerField(
        source="spent_tokens",
        help_text="Every call made, a redone delivery's too: it can be above `usage`.",
    )
    spentCostUsd = serializers.SerializerMethodField()
    reachedAt = TimestampField(
        source="budget_reached_at",
        allow_null=True,
        help_text="Timestamp (ms) when the spending reached the budget: no call started after.",
    )

    def get_maxCostUsd(self, run) -> float | None:
        nanos = run.budget_max_cost_nano_usd
        return None if nanos is None else usd_of(nanos)

    def get_spentCostUsd(self, run) -> float:
        return usd_of(run.spent_cost_nano_usd)

    def to_representation(self, run):
        if run.budget_max_tokens is None and run.budget_max_cost_nano_usd is None:
            return None
        return super().to_representation(run)


class RunSerializer(RunWaitFields, serializers.ModelSerializer):
    progress = ProgressSerializer(source="*", read_only=True)
    usage = UsageSerializer(
        read_only=True,
        help_text="Tokens and cost of the run's model calls: its entities that ended, those "
        "waiting now, and its provider batches' answers.",
    )
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
    trigger = TriggerSerializer(read_only=True, help_text="What started the run.")
    budget = RunBudgetSerializer(
        source="*",
        read_only=True,
        allow_null=True,
        help_text="The run's budget (`maxTokens`, `maxCostUsd`) and what its calls spent "
        "against it; null without one.",
    )
    cancelRequestedAt = TimestampField(
        source="cancel_requested_at", allow_null=True, help_text=CANCEL_REQUESTED_HELP
    )
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
            "trigger",
            "usage",
            "budget",
            *RUN_WAIT_FIELDS,
            "cancelRequestedAt",
            "createdAt",
        ]


def _waiting_for(kind) -> type[serializers.Serializer]:
    """`waitingFor` of an item waiting at a wait of this kind: its `kind`, and its facts
    (`WaitKind.described_fields`)."""
    name = "".join(part.capitalize() for part in kind.name.split("_"))
    kind_field = extend_schema_field({"type": "string", "enum": [kind.name]})(
        type(f"{name}KindField", (serializers.CharField,), {})
    )
    fields = {"kind": kind_field(read_only=True), **kind.described_fields()}
    return type(f"WaitingFor{name}", (serializers.Serializer,), fields)


# One shape per kind of wait, told apart by `kind`: a generated SDK reads each as a model.
WAITING_FOR = PolymorphicProxySerializer(
    component_name="WaitingFor",
    serializers=[_waiting_for(kind) for kind in kinds],
    resource_type_field_name=None,
    allow_null=True,
)


class RunItemSerializer(serializers.ModelSerializer):
    entityId = serializers.CharField(source="entity_id")
    stepId = serializers.SerializerMethodField(help_text="Where the entity stopped or failed.")
    error = serializers.SerializerMethodField()
    startedAt = TimestampField(source="started_at", allow_null=True)
    completedAt = TimestampField(source="completed_at", allow_null=True)
    waitingFor = serializers.SerializerMethodField(
        help_text="While `waiting`: the kind of wait and what it waits for, its shape by "
        "`kind`; null otherwise."
    )

    class Meta:
        model = RunItem
        fields = [
            "entityId",
            "status",
            "stepId",
            "error",
            "attempts",
            "startedAt",
            "completedAt",
            "waitingFor",
        ]

    @extend_schema_field(WAITING_FOR)
    def get_waitingFor(self, item) -> dict | None:
        facts = self.context.get("waiting_for", {}).get(item.pk)
        if facts is None:
            return None
        # A kind's times are datetimes (`WaitKind.describe`): in ms, as every time served.
        return {
            key: to_millis(value) if isinstance(value, datetime) else value
            for key, value in facts.items()
        }

    def get_stepId(self, item) -> str | None:
        return item.step_id or None

    def get_error(self, item) -> str | None:
        return item.error or None


class EstimateSerializer(serializers.Serializer):
    entities = serializers.IntegerField()
    modelCalls = serializers.IntegerField()
    inputTokens = serializers.IntegerField()
    outputTokens = serializers.IntegerField()
    costUsd = serializers.FloatField(
        allow_null=True, help_text="Null when a step's model has no known price."
    )
    basis = serializers.ChoiceField(
        choices=["history", "sample"],
        help_text="`history`: this version's past runs, tokens per entity per step; "
        "`sample`: prompts rendered for a sample of the entities.",
    )


class RunStartedSerializer(serializers.Serializer):
    jobId = serializers.CharField(help_text="The ID of the background job created for this run.")
    runId = serializers.CharField(help_text="The ID of the run.")


class JobSerializer(serializers.ModelSerializer):
    """The background job behind a run; status and progress are the run's."""

    status = serializers.ChoiceField(source="run.status", choices=RunStatus.choices, read_only=True)
    progress = ProgressSerializer(source="run", read_only=True)
    workflowId = serializers.CharField(source="run.workflow_id", read_only=True)
    runId = serializers.CharField(
        source="run_id", read_only=True, allow_null=True, help_text="Null for an experiment."
    )
    experimentId = serializers.CharField(
        source="experiment_id",
        read_only=True,
        allow_null=True,
        help_text="An experiment's job: the experiment (null for a run).",
    )
    trigger = TriggerSerializer(source="run.trigger", read_only=True)
    usage = UsageSerializer(source="run.usage", read_only=True)
    createdAt = TimestampField(source="created_at")
    startedAt = TimestampField(source="run.started_at", allow_null=True)
    completedAt = TimestampField(source="run.completed_at", allow_null=True)
    cancelRequestedAt = TimestampField(
        source="run.cancel_requested_at", allow_null=True, help_text=CANCEL_REQUESTED_HELP
    )
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
            "experimentId",
            "trigger",
            "usage",
            "createdAt",
            "startedAt",
            "completedAt",
            "cancelRequestedAt",
            "error",
        ]

    def get_error(self, job) -> str | None:
        return job.run.error or None

    def to_representation(self, job):
        if job.type == Job.Type.EXPERIMENT:
            return experiment_job(job)
        return super().to_representation(job)


def experiment_job(job: Job) -> dict:
    """An experiment's job, in a run's job's shape: its progress counts the entities with a
    result (`completed`), those whose side waits for a provider batch (`waiting`, as the
    job's queryset annotates it: `experiment_entities_waiting`) and, once cancelled, those
    left (`cancelled`)."""
    experiment = job.experiment
    left = experiment.total - experiment.done
    return {
        "id": job.pk,
        "type": job.type,
        "status": experiment.status,
        "progress": {
            "total": experiment.total,
            "completed": experiment.done,
            "failed": 0,
            "cancelled": left if experiment.status == RunStatus.CANCELLED else 0,
            "skipped": 0,
            "waiting": getattr(job, "experiment_entities_waiting", 0),
        },
        "workflowId": experiment.workflow_id,
        "runId": None,
        "experimentId": experiment.pk,
        "trigger": {"type": TriggerType.API},
        "usage": experiment.usage.summary(),
        "createdAt": TimestampField().to_representation(job.created_at),
        "startedAt": _timestamp(experiment.started_at),
        "completedAt": _timestamp(experiment.completed_at),
        "cancelRequestedAt": _timestamp(experiment.cancel_requested_at),
        "error": experiment.error or None,
    }


def _timestamp(value):
    return None if value is None else TimestampField().to_representation(value)


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
