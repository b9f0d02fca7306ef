"""What clients send about runs: the entities and options of a run to start or estimate, a
revert's and a retry's options, and the query parameters of a run's items, the jobs and the
logs. (What the API answers is `jobs/serializers.py`.)"""

from django.conf import settings
from rest_framework import serializers

from config.api.serializers import StrictSerializer
from entities.filters import EntityFilterSerializer, IdListField
from jobs.models import RunItem, RunLog, RunStatus
from workflows.outbound import url_problem
from workflows.signatures import SECRET_MAX_LENGTH, signing_key


class BudgetSerializer(StrictSerializer):
    maxCostUsd = serializers.FloatField(
        required=False,
        min_value=0.000001,
        max_value=1_000_000_000,
        help_text="Once the run's model calls cost this much (USD), no new call starts.",
    )
    maxTokens = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=10**15,
        help_text="Once the run's model calls used this many tokens (input + output), no new "
        "call starts.",
    )

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give maxCostUsd, maxTokens or both.")
        return attrs


class RunTargetSerializer(StrictSerializer):
    """The entities a run takes: named (`entityIds`) or matched (`filter`, `limit`)."""

    refuses_empty = True

    entityIds = IdListField(
        required=False,
        min_length=1,
        max_length=settings.RUN_MAX_IDS,
        help_text="Array of entity IDs to run the workflow on (1 to 10,000). "
        "Give this or `filter`.",
    )
    # -- runs over a filter (issue #19) --
    filter = EntityFilterSerializer(
        required=False,
        help_text="Run over the entities of the workflow's type that match (up to "
        "RUN_MAX_ENTITIES, 1,000,000 by default) instead of naming them. `{}` is all of them.",
    )
    limit = serializers.IntegerField(
        required=False, min_value=1, help_text="With `filter`: run over at most this many."
    )
    # -- end of runs over a filter --

    def validate(self, attrs):
        if ("entityIds" in attrs) == ("filter" in attrs):
            message = "Give either `entityIds` or `filter`."
            raise serializers.ValidationError({"entityIds": [message], "filter": [message]})
        if "limit" in attrs and "filter" not in attrs:
            raise serializers.ValidationError({"limit": ["`limit` goes with `filter`."]})
        return attrs


class RunStartSerializer(RunTargetSerializer):
    version = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=999_999_999,
        help_text="Run this version of the workflow (a draft, say, over a few entities) "
        "instead of the live one.",
    )
    # Checked as a `notify` step's `url` is (`url_problem`), not by Django's URLValidator,
    # which refuses a host name of one label (`http://hooks:9000/`, a service on the
    # deployment's network that OUTBOUND_ALLOWED_HOSTS admits by name).
    callbackUrl = serializers.CharField(
        required=False,
        max_length=2000,
        help_text="POSTed the final run once it ends (at least once: a lost or redelivered "
        "task may send it again; the body's `id` and the `webhook-id` header tell a run's "
        "callbacks apart).",
    )
    callbackSecret = serializers.CharField(
        required=False,
        write_only=True,
        max_length=SECRET_MAX_LENGTH,
        trim_whitespace=False,
        help_text="Signs the callback as Standard Webhooks do (`webhook-signature`, over "
        "`webhook-id`, `webhook-timestamp` and the body): `whsec_` and base64, as a Standard "
        "Webhooks library makes it, or any other string, used as it is. Never shown again.",
    )
    budget = BudgetSerializer(
        required=False,
        help_text="Caps the run's model calls: once reached, the entities left fail and the "
        "run ends failed (the calls in flight finish and count; in batch mode each request is "
        "reserved at its estimate before it is sent, and none is sent past the budget).",
    )

    def validate_callbackUrl(self, value: str) -> str:
        problem = url_problem(value)  # a port that exists, no credentials
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_callbackSecret(self, value: str) -> str:
        try:
            signing_key(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value

    def validate(self, attrs):
        attrs = super().validate(attrs)
        if "callbackSecret" in attrs and "callbackUrl" not in attrs:
            raise serializers.ValidationError(
                {"callbackSecret": ["`callbackSecret` goes with `callbackUrl`."]}
            )
        return attrs


class EstimateRequestSerializer(RunTargetSerializer):
    """The entities of the run to estimate, as `/run` takes them."""


class RunItemQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=RunItem._meta.get_field("status").choices, required=False
    )


class JobListQuerySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RunStatus.choices, required=False)
    workflowId = serializers.CharField(required=False)


class LogQuerySerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=RunLog.Level.choices, required=False)
    entityId = serializers.CharField(required=False)


class RunRevertSerializer(StrictSerializer):
    force = serializers.BooleanField(
        default=False,
        help_text="Revert entities changed since the run too (their later changes to the run's "
        "fields are lost); by default they are skipped.",
    )


class RunRetrySerializer(StrictSerializer):
    useLatestVersion = serializers.BooleanField(
        default=False,
        help_text="Run the workflow's current version instead of the one the original run used.",
    )
