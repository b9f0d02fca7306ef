"""A stand-in model: no network, no key, deterministic, and honest about being a stand-in.

It lets the product run on a fresh machine. Text answers say what they are; JSON answers are
the smallest object that satisfies the requested schema.

It runs batches too: a batch's requests are stored in the database (`LocalBatch`, one row
per idempotency key), so every process answers its status and results; it ends
AI_LOCAL_BATCH_DELAY_S after submission, each answer exactly what `generate` answers.

Test hooks (a stand-in's, documented): a prompt holding `[local:fail]` fails, in batch mode
as a retryable per-request error and live as a `StepError`; one holding `[local:drop]` is
missing from its batch's results (as an expired request is); in JSON mode one holding
`[local:invalid-json]` is answered with text that is not JSON; a batch holding a prompt with
`[local:reject]` ends `failed` (the provider rejected it).
"""

import json
from dataclasses import asdict
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.utils import timezone

from config.metrics import MODEL_BATCH_CALLS, MODEL_CALLS, model_call
from workflows.providers.base import (
    BatchItem,
    BatchProvider,
    BatchResult,
    BatchStatus,
    Generation,
    GenerationRequest,
    Provider,
)
from workflows.providers.usage import count_batch_results, count_usage, model_label
from workflows.steps.runtime import StepError

STAND_IN = "[local stand-in model: set AI_PROVIDER for real output]"
FAIL_MARKER = "[local:fail]"
DROP_MARKER = "[local:drop]"
INVALID_JSON_MARKER = "[local:invalid-json]"
REJECT_MARKER = "[local:reject]"
REJECTED_MESSAGE = f"the batch holds a prompt with the {REJECT_MARKER} marker (a test hook)"
FAILED_MESSAGE = f"local: failed as the prompt's {FAIL_MARKER} marker asks (a test hook)"


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def stand_in_value(schema: dict | None):
    """The smallest value of the schema's type, with every required property filled in."""
    schema = schema or {}
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: stand_in_value(properties.get(name)) for name in schema.get("required", [])}
    if kind == "array":
        return [stand_in_value(schema.get("items"))] * schema.get("minItems", 0)
    if kind == "string":
        return (STAND_IN + " ") * (1 + schema.get("minLength", 0) // len(STAND_IN))
    if kind in ("number", "integer"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


def _batches():
    # Looked up in the app registry, not imported: the models module imports the step
    # types, which import the providers.
    return apps.get_model("workflows", "LocalBatch").objects


class LocalProvider(BatchProvider, Provider):
    """Counted in the metrics as the network providers are: each call, its time and tokens,
    each batch round trip, and each batch answer when its results are read."""

    name = "local"
    default_model = "local"

    def generate(self, request: GenerationRequest, on_retry=None) -> Generation:
        labels = (self.name, model_label(self.name, request.model))
        with model_call(*labels):
            failed = FAIL_MARKER in request.prompt
            generation = None if failed else self._answer(request)
        if generation is None:
            MODEL_CALLS.labels(*labels, "error").inc()
            raise StepError(FAILED_MESSAGE)
        count_usage(labels, generation.usage)
        MODEL_CALLS.labels(*labels, "ok").inc()
        return generation

    def batch_submit(self, items: list[BatchItem], *, idempotency_key: str) -> str:
        MODEL_BATCH_CALLS.labels(self.name, "batches.create", "ok").inc()
        batch, _ = _batches().get_or_create(
            idempotency_key=idempotency_key,
            defaults={
                "requests": [
                    {"customId": item.custom_id, "request": asdict(item.request)} for item in items
                ]
            },
        )
        return batch.pk

    def batch_status(self, batch_id: str) -> BatchStatus:
        MODEL_BATCH_CALLS.labels(self.name, "batches.retrieve", "ok").inc()
        return self._status(batch_id)

    def _status(self, batch_id: str) -> BatchStatus:
        batch = _batches().get(pk=batch_id)
        total = len(batch.requests)
        if batch.cancelled_at is not None and batch.cancelled_at < self._ends_at(batch):
            return BatchStatus("cancelled", {"total": total, "completed": 0, "failed": 0})
        if timezone.now() < self._ends_at(batch):
            return BatchStatus("in_progress", {"total": total, "completed": 0, "failed": 0})
        if any(REJECT_MARKER in entry["request"]["prompt"] for entry in batch.requests):
            counts = {"total": total, "completed": 0, "failed": total}
            return BatchStatus("failed", counts, error=REJECTED_MESSAGE)
        failed = sum(1 for entry in batch.requests if FAIL_MARKER in entry["request"]["prompt"])
        return BatchStatus("ended", {"total": total, "completed": total - failed, "failed": failed})

    def batch_results(
        self, batch_id: str, requests: dict[str, GenerationRequest] | None = None
    ) -> list[BatchResult]:
        # The stand-in keeps each batch's requests itself, so `requests` adds nothing.
        MODEL_BATCH_CALLS.labels(self.name, "batches.results", "ok").inc()
        if self._status(batch_id).state != "ended":
            return []  # cancelled before it ended: no request finished
        results = []
        for entry in _batches().get(pk=batch_id).requests:
            request = GenerationRequest(**entry["request"])
            if DROP_MARKER in request.prompt:
                continue
            if FAIL_MARKER in request.prompt:
                results.append(BatchResult(entry["customId"], error=FAILED_MESSAGE, retryable=True))
            else:
                results.append(BatchResult(entry["customId"], generation=self._answer(request)))
        return count_batch_results(self.name, results)

    def batch_cancel(self, batch_id: str) -> None:
        MODEL_BATCH_CALLS.labels(self.name, "batches.cancel", "ok").inc()
        _batches().filter(pk=batch_id, cancelled_at__isnull=True).update(
            cancelled_at=timezone.now()
        )

    @staticmethod
    def _ends_at(batch):
        return batch.submitted_at + timedelta(seconds=settings.AI_LOCAL_BATCH_DELAY_S)

    @staticmethod
    def _answer(request: GenerationRequest) -> Generation:
        if request.json_mode and INVALID_JSON_MARKER in request.prompt:
            text = f"{STAND_IN} not JSON, as the prompt's {INVALID_JSON_MARKER} marker asks"
        elif request.json_mode:
            text = json.dumps(stand_in_value(request.json_schema))
        else:
            text = f"{STAND_IN} {' '.join(request.prompt.split())[:200]}"
            if request.max_tokens:
                text = " ".join(text.split()[: request.max_tokens])
        usage = {
            "inputTokens": _tokens(request.system + " " + request.prompt),
            "cachedInputTokens": 0,
            "outputTokens": _tokens(text),
        }
        return Generation(
            text=text, model=request.model or LocalProvider.default_model, usage=usage
        )
