"""Batch mode over the network: OpenAI's Batch API and Anthropic's Message Batches.

Mixed into the network providers (`network.py`), whose request building (`_body` /
`_params`) and answer reading (`_generation`) they reuse, so a batch line carries exactly
what the sync call would send and its answer is read as the sync answer is. Each call is a
round trip or a few, with no retries of its own (the engine polls again) and no
request-per-minute slot taken: the provider queues batch requests apart from live ones.
A refusal raises `BatchCallFailed` naming the provider, the status and its message, and
whether the call may succeed if made again (`retryable`).

Idempotency (`batch_submit(..., idempotency_key=...)`):
- OpenAI: the key is stored in the batch's `metadata`; before creating, the batches of the
  last LOOKBACK_S are listed and one carrying the key is returned instead. A resubmission
  after a crash (at any point, even after `batches.create` answered) therefore runs nothing
  twice; it may leave the first attempt's uploaded input file unused. Two submitters racing
  with the same key at the same moment are not kept apart (the engine's lease makes one).
- Anthropic: batches carry no metadata and cannot be listed by anything of ours, so the key
  is remembered in the cache (Redis with the Redis broker, shared by every worker) as soon
  as `messages.batches.create` answers. A crash between the provider's answer and that
  write (a few milliseconds) can still submit the requests twice; the engine polls only the
  batch whose id it recorded, so the other one costs its price but changes no result. So
  can a `messages.batches.create` that timed out after Anthropic made the batch (the
  engine sends a submission that met a timeout again).
  Without a shared cache (the embedded defaults) the key is remembered per process.
"""

import hashlib
import json
import time

import httpx2
from django.conf import settings
from django.core.cache import cache

from config.metrics import MODEL_BATCH_CALLS
from workflows.providers.base import (
    BatchCallFailed,
    BatchItem,
    BatchProvider,
    BatchResult,
    BatchStatus,
    GenerationRequest,
)
from workflows.providers.deadline import call_deadline
from workflows.providers.usage import count_batch_results, outcome_label

# How far back a resubmission looks for its batch: the 24 h completion window and a margin.
LOOKBACK_S = 48 * 3600
KEY_TTL_S = LOOKBACK_S
METADATA_VALUE_MAX = 512  # OpenAI's limit on a metadata value
# A request whose request is not known is read as a plain one (no schema to unwrap).
UNKNOWN = GenerationRequest(prompt="", model="")


def _key(idempotency_key: str) -> str:
    if len(idempotency_key) <= METADATA_VALUE_MAX:
        return idempotency_key
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


class NetworkBatch(BatchProvider):
    """What both providers' batch calls share: the round trip (errors as `BatchCallFailed`,
    counted) and the results counted as model calls. The host provider gives `client`,
    `sdk`, `name`, `_resolved`, `_problem` and `_generation`."""

    def _round_trip(self, operation: str, call, *args, **kwargs):
        # One deadline for the whole round trip (a download read to its end included): the
        # SDK's timeout bounds each read only, and a server sending a few bytes at a time
        # held the poll, and the `waits` worker running it, for as long as it liked.
        seconds = settings.AI_BATCH_CALL_TIMEOUT_S
        try:
            with call_deadline(seconds):
                answer = call(*args, **kwargs)
        except self.sdk.APIError as exc:
            status, message, retryable, _ = self._problem(exc)
            if isinstance(exc, self.sdk.APITimeoutError):
                message = f"no answer within {seconds:g}s (AI_BATCH_CALL_TIMEOUT_S)"
            MODEL_BATCH_CALLS.labels(self.name, operation, outcome_label(status)).inc()
            problem = f"{self.name}: {status}: {message} ({operation})"
            raise BatchCallFailed(problem, retryable=retryable) from exc
        except httpx2.HTTPError as exc:  # a streamed body broken off: the SDK does not wrap it
            if isinstance(exc, httpx2.TimeoutException):
                status, message = (
                    "timeout",
                    f"no answer within {seconds:g}s (AI_BATCH_CALL_TIMEOUT_S)",
                )
            else:
                status, message = "connection error", str(exc)
            MODEL_BATCH_CALLS.labels(self.name, operation, status).inc()
            problem = f"{self.name}: {status}: {message} ({operation})"
            raise BatchCallFailed(problem, retryable=True) from exc
        MODEL_BATCH_CALLS.labels(self.name, operation, "ok").inc()
        return answer

    def _read(self, text: str, requests: dict) -> BatchResult | None:
        """One line of a batch's results: its request's result, or None for a line that
        names no request readably (not JSON, cut short, no `custom_id`), which is left out:
        its request counts as missing and is sent again. A line of one of our requests in
        no known shape is a retryable error of that request; neither hides the others."""
        try:
            line = json.loads(text)
        except (ValueError, RecursionError):
            return None
        custom_id = line.get("custom_id") if isinstance(line, dict) else None
        if not isinstance(custom_id, str):
            return None
        try:
            return self._result(line, requests)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            problem = f"a result line not in the batch's shape ({exc!r})"
            return BatchResult(custom_id, error=f"{self.name}: 200: {problem}", retryable=True)

    def _result(self, line: dict, requests: dict) -> BatchResult | None:
        """A line naming one of our requests, as JSON: its result, or None (cancelled
        before it ran: absent)."""
        raise NotImplementedError

    def _counted(self, results: list[BatchResult]) -> list[BatchResult]:
        return count_batch_results(self.name, results)


class OpenAIBatch(NetworkBatch):
    """The Batch API of OpenAI-compatible servers, on `/v1/chat/completions`."""

    endpoint = "/v1/chat/completions"
    STATES = {
        "validating": "in_progress",
        "in_progress": "in_progress",
        "finalizing": "in_progress",
        "cancelling": "in_progress",
        "completed": "ended",
        "failed": "failed",
        "expired": "expired",
        "cancelled": "cancelled",
    }
    RUNNING = ("validating", "in_progress", "finalizing")

    def batch_submit(self, items: list[BatchItem], *, idempotency_key: str) -> str:
        key = _key(idempotency_key)
        existing = self._round_trip("batches.list", self._batch_with_key, key)
        if existing:
            return existing
        lines = [
            {
                "custom_id": item.custom_id,
                "method": "POST",
                "url": self.endpoint,
                "body": self._body(self._resolved(item.request)),
            }
            for item in items
        ]
        jsonl = "".join(json.dumps(line) + "\n" for line in lines).encode()
        upload = self._round_trip(
            "files.create",
            self.client.files.create,
            file=("batch.jsonl", jsonl, "application/jsonl"),
            purpose="batch",
        )
        batch = self._round_trip(
            "batches.create",
            self.client.batches.create,
            input_file_id=upload.id,
            endpoint=self.endpoint,
            completion_window="24h",
            metadata={"idempotency_key": key},
        )
        return batch.id

    def _batch_with_key(self, key: str) -> str:
        """The id of a recent batch created with this key, or ""; newest first, pages
        fetched as the listing goes."""
        since = time.time() - LOOKBACK_S
        for batch in self.client.batches.list(limit=100):
            if batch.created_at < since:
                break
            if (batch.metadata or {}).get("idempotency_key") == key:
                return batch.id
        return ""

    def batch_status(self, batch_id: str) -> BatchStatus:
        batch = self._round_trip("batches.retrieve", self.client.batches.retrieve, batch_id)
        counts = batch.request_counts
        error = ""
        if batch.status == "failed":
            errors = batch.errors.data if batch.errors and batch.errors.data else []
            error = "; ".join(e.message or e.code or "" for e in errors) or "the batch failed"
            error = f"{self.name}: {error}"
        return BatchStatus(
            state=self.STATES.get(batch.status, "in_progress"),  # a new state: look again
            counts={
                "total": counts.total if counts else 0,
                "completed": counts.completed if counts else 0,
                "failed": counts.failed if counts else 0,
            },
            error=error,
        )

    def batch_results(
        self, batch_id: str, requests: dict[str, GenerationRequest] | None = None
    ) -> list[BatchResult]:
        """`requests` (by custom_id), when given, let an answer be read as the sync path
        reads it (a JSON schema's wrapper unwrapped); without them answers are read as
        plain text. Requests cancelled before they ran are absent."""
        batch = self._round_trip("batches.retrieve", self.client.batches.retrieve, batch_id)
        results = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = self._round_trip("files.content", self.client.files.content, file_id)
            for line in content.text.splitlines():
                if line.strip():
                    result = self._read(line, requests or {})
                    if result is not None:
                        results.append(result)
        return self._counted(results)

    def _result(self, line: dict, requests: dict) -> BatchResult | None:
        custom_id = line["custom_id"]
        response, error = line.get("response") or {}, line.get("error") or {}
        status = response.get("status_code")
        if status == 200:
            request = requests.get(custom_id, UNKNOWN)
            try:
                generation = self._generation(response.get("body"), request)
            except ValueError as exc:  # one unreadable answer must not hide the others
                return BatchResult(custom_id, error=f"{self.name}: 200: {exc}", retryable=True)
            return BatchResult(custom_id, generation=generation)
        if error.get("code") == "batch_cancelled":
            return None
        if status is not None:
            body = response.get("body") or {}
            message = (body.get("error") or {}).get("message") or json.dumps(body)
            retryable = status in (408, 409, 429) or status >= 500
            return BatchResult(
                custom_id, error=f"{self.name}: {status}: {message}", retryable=retryable
            )
        code = error.get("code") or "error"
        message = error.get("message") or code
        # An expired request did not run: sending it again may well succeed.
        retryable = code == "batch_expired"
        outcome = "expired" if retryable else code
        return BatchResult(
            custom_id, error=f"{self.name}: {outcome}: {message}", retryable=retryable
        )

    def batch_cancel(self, batch_id: str) -> None:
        batch = self._round_trip("batches.retrieve", self.client.batches.retrieve, batch_id)
        if batch.status in self.RUNNING:
            self._round_trip("batches.cancel", self.client.batches.cancel, batch_id)


class AnthropicBatch(NetworkBatch):
    """Anthropic's Message Batches."""

    RETRYABLE = frozenset({"api_error", "overloaded_error", "rate_limit_error", "timeout_error"})

    def _cache_key(self, key: str) -> str:
        return f"ai-batch:{self.name}:{hashlib.sha256(key.encode()).hexdigest()}"

    def batch_submit(self, items: list[BatchItem], *, idempotency_key: str) -> str:
        cache_key = self._cache_key(idempotency_key)
        known = cache.get(cache_key)
        if known:
            return known
        requests = [
            {"custom_id": item.custom_id, "params": self._params(self._resolved(item.request))}
            for item in items
        ]
        batch = self._round_trip(
            "messages.batches.create", self.client.messages.batches.create, requests=requests
        )
        cache.set(cache_key, batch.id, timeout=KEY_TTL_S)
        return batch.id

    def batch_status(self, batch_id: str) -> BatchStatus:
        batch = self._retrieve(batch_id)
        counts = batch.request_counts
        if batch.processing_status != "ended":
            state = "in_progress"
        else:
            state = "cancelled" if batch.cancel_initiated_at else "ended"
        total = (
            counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
        )
        return BatchStatus(
            state=state,
            counts={
                "total": total,
                "completed": counts.succeeded,
                "failed": counts.errored + counts.expired,
            },
        )

    def _retrieve(self, batch_id: str):
        return self._round_trip(
            "messages.batches.retrieve", self.client.messages.batches.retrieve, batch_id
        )

    def batch_results(
        self, batch_id: str, requests: dict[str, GenerationRequest] | None = None
    ) -> list[BatchResult]:
        """`requests` as for OpenAI: with them a forced tool's answer is unwrapped as the
        sync path does. Cancelled requests are absent."""
        if self._retrieve(batch_id).processing_status != "ended":
            return []  # no results yet: the SDK would refuse to fetch them
        lines = self._round_trip("messages.batches.results", self._result_lines, batch_id)
        results = [self._read(line, requests or {}) for line in lines if line.strip()]
        return self._counted([result for result in results if result is not None])

    def _result_lines(self, batch_id: str) -> list[str]:
        """The results' JSONL lines as sent: the SDK's decoder stops at the first line that
        is not JSON, losing every line after it."""
        decoder = self.client.messages.batches.results(batch_id)
        try:
            return list(decoder.http_response.iter_lines())
        finally:
            decoder.close()

    def _result(self, line: dict, requests: dict) -> BatchResult | None:
        custom_id, outcome = line["custom_id"], line["result"]
        if outcome["type"] == "succeeded":
            request = requests.get(custom_id, UNKNOWN)
            try:  # the message as JSON, as a sync call reads it
                generation = self._generation(outcome["message"], request)
            except ValueError as exc:  # one unreadable answer must not hide the others
                return BatchResult(custom_id, error=f"{self.name}: 200: {exc}", retryable=True)
            return BatchResult(custom_id, generation)
        if outcome["type"] == "errored":
            error = outcome["error"]["error"]
            kind, message = error["type"], error.get("message") or error["type"]
            return BatchResult(
                custom_id,
                error=f"{self.name}: {kind}: {message}",
                retryable=kind in self.RETRYABLE,
            )
        if outcome["type"] == "expired":
            return BatchResult(
                custom_id,
                error=f"{self.name}: expired: the batch ended before the request ran",
                retryable=True,
            )
        return None  # canceled

    def batch_cancel(self, batch_id: str) -> None:
        if self._retrieve(batch_id).processing_status == "in_progress":
            self._round_trip(
                "messages.batches.cancel", self.client.messages.batches.cancel, batch_id
            )
