"""The experiments API's shapes: what `POST /workflows/:id/experiments` takes (strict), and
what an experiment and its results read as."""

from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.fields import MillisField, TimestampField, to_millis
from config.api.serializers import StrictSerializer
from entities.filters import EntityFilterSerializer
from jobs.experiments.models import EXPERIMENT_STATUSES, Experiment, ExperimentResult
from jobs.experiments.summaries import summary_of
from jobs.inputs import BudgetSerializer, IdListField
from jobs.serializers import UsageSerializer
from workflows.steps.validate import Validate
from workflows.templating import template_problem
from workflows.usage import Usage


class ScorerSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["rules", "judge", "human"])
    name = serializers.RegexField(
        r"^[A-Za-z0-9 _.-]{1,100}$",
        help_text="Unique among the experiment's scorers; not dots alone.",
    )
    rules = serializers.JSONField(
        required=False, help_text="`rules`: the `validate` step's rules (pass or fail per side)."
    )
    mode = serializers.ChoiceField(choices=["pairwise", "score"], required=False)
    instructions = serializers.CharField(
        required=False, max_length=20_000, help_text="`judge`: a template (`{{ entity.* }}`)."
    )
    provider = serializers.ChoiceField(
        choices=list(settings.AI_PROVIDERS),
        required=False,
        help_text="`judge`: the judge's provider (default: the deployment's, `AI_PROVIDER`).",
    )
    model = serializers.CharField(
        required=False,
        max_length=200,
        help_text="`judge`: the judge's model (default: `AI_MODEL`, else the provider's).",
    )
    fields = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=100,
        help_text="`judge`: the fields of each side it reads, dotted paths for nested values "
        "(default: those either changed).",
    )

    def validate_name(self, name: str) -> str:
        # A human scorer's name is a part of its compare page's URL, where `.` and `..` are
        # the page itself and the one above.
        if not name.strip("."):
            raise serializers.ValidationError("A name of dots alone cannot name a page.")
        return name

    def validate(self, attrs):
        kind = attrs["type"]
        allowed = {
            "rules": {"type", "name", "rules"},
            "judge": {"type", "name", "mode", "instructions", "provider", "model", "fields"},
            "human": {"type", "name"},
        }[kind]
        wrong = sorted(set(attrs) - allowed)
        if wrong:
            raise serializers.ValidationError(
                {name: [f"Not a field of a `{kind}` scorer."] for name in wrong}
            )
        if kind == "rules":
            attrs["rules"] = _rules_clean(attrs.get("rules"))
        if kind == "judge":
            missing = [name for name in ("mode", "instructions") if name not in attrs]
            if missing:
                raise serializers.ValidationError(
                    {name: [self.fields[name].error_messages["required"]] for name in missing},
                    code="required",
                )
            problem = template_problem(attrs["instructions"])
            if problem:
                raise serializers.ValidationError({"instructions": [problem]})
        return attrs


def _rules_clean(rules) -> list[dict]:
    """The rules as the `validate` step checks its own (the same schema and checks)."""
    if rules is None:
        raise serializers.ValidationError({"rules": ["This field is required."]}, code="required")
    problems = Validate().problems({"rules": rules, "useEntityTypeSchema": False}, path="")
    if problems:
        raise serializers.ValidationError(
            {"rules": [f"{p.field.lstrip('.')}: {p.message}" for p in problems]}
        )
    if not rules:
        raise serializers.ValidationError({"rules": ["Give at least one rule."]})
    return rules


class ExperimentStartSerializer(StrictSerializer):
    baseline = serializers.IntegerField(
        required=False, min_value=1, max_value=999_999_999, help_text="Default: the live version."
    )
    candidate = serializers.IntegerField(min_value=1, max_value=999_999_999)
    entityIds = IdListField(
        required=False,
        min_length=1,
        max_length=10_000,
        help_text="The entities both versions run on (1 to 10,000, each once). "
        "Give this or `filter`.",
    )
    filter = EntityFilterSerializer(
        required=False, help_text="The entities of the workflow's type that match."
    )
    sample = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=10_000,
        help_text="With `filter`: a seeded random sample of this many of the matches.",
    )
    scorers = ScorerSerializer(many=True, max_length=20)
    budget = BudgetSerializer(
        required=False,
        help_text="Caps the model calls of both sides and the judges: once reached, no new call "
        "starts (the entities left fail, saying so).",
    )

    def validate(self, attrs):
        if ("entityIds" in attrs) == ("filter" in attrs):
            message = "Give either `entityIds` or `filter`."
            raise serializers.ValidationError({"entityIds": [message], "filter": [message]})
        if "entityIds" in attrs and not attrs["entityIds"]:
            raise serializers.ValidationError({"entityIds": ["Give at least one entity id."]})
        if "sample" in attrs and "filter" not in attrs:
            raise serializers.ValidationError({"sample": ["`sample` goes with `filter`."]})
        names = [scorer["name"] for scorer in attrs["scorers"]]
        if len(set(names)) != len(names):
            raise serializers.ValidationError({"scorers": ["Scorer names must be unique."]})
        return attrs


class ExperimentStartedSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The experiment's id.")
    jobId = serializers.CharField(help_text="Its job: cancel it with POST /jobs/:id/cancel.")


class ArmSerializer(serializers.Serializer):
    completed = serializers.IntegerField()
    stopped = serializers.IntegerField()
    failed = serializers.IntegerField()
    inputTokens = serializers.IntegerField()
    outputTokens = serializers.IntegerField()
    costUsd = serializers.FloatField(allow_null=True)
    meanSeconds = serializers.FloatField(allow_null=True)


class ArmsSerializer(serializers.Serializer):
    baseline = ArmSerializer()
    candidate = ArmSerializer()


class ScoreSerializer(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["rules", "judge", "human"])
    baseline = serializers.FloatField(allow_null=True, help_text="Pass rate or mean score.")
    candidate = serializers.FloatField(allow_null=True)
    wins = serializers.IntegerField(help_text="Entities where the candidate did better.")
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()


class ExperimentProgressSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    done = serializers.IntegerField(help_text="Entities with their result (both sides ended).")
    waiting = serializers.IntegerField(
        source="entities_waiting",
        help_text="Entities not done whose side waits for a provider batch (an `ai_generate` "
        "step in batch mode), or was answered and is being continued.",
    )


class ExperimentSerializer(serializers.ModelSerializer):
    workflowId = serializers.CharField(source="workflow_id")
    baseline = serializers.IntegerField(source="baseline.number")
    candidate = serializers.IntegerField(source="candidate.number")
    status = serializers.ChoiceField(choices=EXPERIMENT_STATUSES)
    progress = ExperimentProgressSerializer(source="*")
    arms = serializers.SerializerMethodField()
    scores = serializers.SerializerMethodField()
    jobId = serializers.CharField(source="job.pk")
    error = serializers.SerializerMethodField()
    createdAt = TimestampField(source="created_at")
    completedAt = TimestampField(source="completed_at", allow_null=True)

    class Meta:
        model = Experiment
        fields = [
            "id",
            "workflowId",
            "baseline",
            "candidate",
            "status",
            "progress",
            "arms",
            "scores",
            "jobId",
            "error",
            "createdAt",
            "completedAt",
        ]

    def get_arms(self, experiment) -> ArmsSerializer:
        return summary_of(experiment)["arms"]

    def get_scores(self, experiment) -> ScoreSerializer(many=True):
        return summary_of(experiment)["scores"]

    def get_error(self, experiment) -> str | None:
        return experiment.error or None


class SideChangeSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="A top-level field of the data, or `status`.")
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


class SideStepSerializer(serializers.Serializer):
    stepId = serializers.CharField()
    outcome = serializers.CharField()
    output = serializers.JSONField(allow_null=True)
    error = serializers.CharField(allow_null=True)


class SideWaitSerializer(serializers.Serializer):
    stepId = serializers.CharField()
    kind = serializers.CharField(help_text="The kind of wait it would have held.")


class ResultSideSerializer(serializers.Serializer):
    """One side of an entity's result, as its version ran in shadow mode (the OpenAPI shape
    of `SideField`)."""

    outcome = serializers.ChoiceField(choices=["completed", "stopped", "failed"])
    error = serializers.CharField(allow_null=True)
    changes = SideChangeSerializer(many=True, help_text="Each field it would have changed.")
    data = serializers.JSONField(help_text="The working copy as the side left it.")
    steps = SideStepSerializer(many=True)
    notes = serializers.ListField(child=serializers.CharField())
    waits = SideWaitSerializer(many=True)
    usage = UsageSerializer()
    seconds = serializers.FloatField()


@extend_schema_field(ResultSideSerializer)
class SideField(serializers.JSONField):
    """A side as stored, its usage shown as every usage of the API is (one sum, shown alike),
    not as stored (nano-dollars, zeros left out)."""

    def to_representation(self, value):
        return {**value, "usage": UsageSerializer(Usage.of(value.get("usage"))).data}


class VerdictArmSerializer(serializers.Serializer):
    passed = serializers.BooleanField(required=False, help_text="`rules`.")
    score = serializers.IntegerField(required=False, help_text="`judge` in `score` mode: 1-5.")
    reason = serializers.CharField()


@extend_schema_field({"type": "string", "nullable": True, "pattern": "^(baseline|candidate|tie)$"})
class WinnerField(serializers.CharField):
    """Which side a verdict found better: `baseline`, `candidate` or `tie` (a pattern, not an
    enum: an enum beside null becomes a `oneOf`, which OpenAPI 3.0 cannot mark nullable)."""


class VerdictSerializer(serializers.Serializer):
    """One scorer's verdict on an entity; which fields it has follows its type (and mode)."""

    name = serializers.CharField()
    type = serializers.ChoiceField(choices=["rules", "judge", "human"])
    mode = serializers.ChoiceField(choices=["pairwise", "score"], required=False)
    winner = WinnerField(
        allow_null=True,
        required=False,
        help_text="Pairwise judge, human (null until a person picks).",
    )
    candidateIsA = serializers.BooleanField(required=False)
    reason = serializers.CharField(required=False)
    baseline = VerdictArmSerializer(required=False, help_text="`rules`, `score` mode.")
    candidate = VerdictArmSerializer(required=False)
    error = serializers.CharField(required=False, help_text="A judge's failure.")
    decidedBy = serializers.CharField(
        allow_null=True,
        required=False,
        help_text="A human's pick: who picked (their username, as a review's `decidedBy`; "
        "null once they are deleted).",
    )
    decidedAt = MillisField(
        required=False, help_text="A human's pick: when (ms), as every time served."
    )


@extend_schema_field(VerdictSerializer(many=True))
class VerdictsField(serializers.JSONField):
    """The verdicts as stored (the OpenAPI shape of each: `VerdictSerializer`), a human's
    pick served as a review's decision is: who by username, when in ms (stored as the
    user's key and an ISO 8601 time). A page's results share this field, so each picker's
    username is read once a page."""

    def to_representation(self, value):
        return [self._served(verdict) for verdict in value]

    def _served(self, verdict: dict) -> dict:
        if "decidedAt" not in verdict:
            return verdict
        return {
            **verdict,
            "decidedBy": self._username(verdict.get("decidedBy")),
            "decidedAt": to_millis(datetime.fromisoformat(verdict["decidedAt"])),
        }

    def _username(self, user_id: int | None) -> str | None:
        if user_id is None:
            return None
        known = self.__dict__.setdefault("_usernames", {})
        if user_id not in known:
            users = get_user_model().objects.filter(pk=user_id)
            known[user_id] = users.values_list("username", flat=True).first()
        return known[user_id]


class ExperimentResultSerializer(serializers.ModelSerializer):
    entityId = serializers.CharField(source="entity_id")
    baseline = SideField()
    candidate = SideField()
    verdicts = VerdictsField()

    class Meta:
        model = ExperimentResult
        fields = ["entityId", "baseline", "candidate", "verdicts", "changed", "regressed"]


class ExperimentResultQuerySerializer(serializers.Serializer):
    regressed = serializers.BooleanField(
        required=False, help_text="Only entities where the candidate failed, lost or scored lower."
    )
    changed = serializers.BooleanField(
        required=False, help_text="Only entities whose two sides differ."
    )
