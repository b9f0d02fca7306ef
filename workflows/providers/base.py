from dataclasses import dataclass, field

from workflows.steps.runtime import StepError


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    model: str
    system: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    json_schema: dict | None = None  # set when the answer must be JSON
    json_mode: bool = False


@dataclass
class Generation:
    text: str
    model: str
    # {"inputTokens": n, "cachedInputTokens": n, "outputTokens": n}, "cacheWriteTokens" too
    # when a provider wrote its prompt cache; inputTokens counts every prompt token.
    usage: dict = field(default_factory=dict)


class Provider:
    """An LLM behind one call. Implementations raise `StepError` with a message naming the
    provider, the status and the provider's message once their retries are spent."""

    name = "base"
    supports_batch = False  # True for providers that also implement `BatchProvider`

    def generate(self, request: GenerationRequest, on_retry=None) -> Generation:
        """One answer. `on_retry(message)` is told about each retry, for the run's log."""
        raise NotImplementedError

    def answer_tokens_max(self, request: GenerationRequest) -> int | None:
        """The most tokens an answer to `request` may have, as this provider sends it (None:
        no bound is sent). What a call not made yet is reserved at against a budget."""
        return request.max_tokens

    @classmethod
    def setup_problem(cls) -> str | None:
        """Why no call could succeed as the deployment sets the provider up (a step naming
        it is a 400 at create), or None."""
        return None


# Batch mode: many requests sent as one provider job, answered within hours at a discount.
# The engine parks the entities (a wait of kind "ai_batch", `jobs/waits/`) and celery beat
# polls the job; these are the four calls it makes. Each is one provider round trip (or a
# few), idempotent where the provider allows, and raises `BatchCallFailed` naming the
# provider and its message when the provider refuses or does not answer.


@dataclass(frozen=True)
class BatchItem:
    """One request of a batch; `custom_id` is unique within the batch and comes back with
    its answer (the engine uses the wait's id)."""

    custom_id: str
    request: GenerationRequest


@dataclass
class BatchStatus:
    """What the provider says of a batch job. `state`: "in_progress" (validating, running,
    finalizing), "ended" (results can be read: some may be errors), "failed" (the provider
    rejected the whole batch: `error` says why), "cancelled" or "expired" (results of the
    requests that finished may still be read). `counts`: {"total", "completed", "failed"}."""

    state: str
    counts: dict = field(default_factory=dict)
    error: str = ""


@dataclass
class BatchResult:
    """One request's outcome: an answer (`generation`) or the provider's `error` (then
    `retryable` says whether sending it again may help: expired, rate-limited, server
    errors)."""

    custom_id: str
    generation: Generation | None = None
    error: str = ""
    retryable: bool = False


class BatchCallFailed(StepError):
    """A batch call the provider refused or did not answer. `retryable`: the same call may
    well succeed later (a 408, 409, 429 or 5xx, a timeout, a connection error), so it says
    nothing of the requests; otherwise the provider refused them."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.retryable = retryable


class BatchProvider:
    """The batch calls, mixed into providers that offer them (`supports_batch`)."""

    supports_batch = True

    def batch_submit(self, items: list[BatchItem], *, idempotency_key: str) -> str:
        """Send the requests as one batch job; returns the provider's batch id.
        `idempotency_key` is stable for the same requests (a resubmission after a crash
        sends the same key, so providers and our fakes that honour it do not run it twice)."""
        raise NotImplementedError

    def batch_status(self, batch_id: str) -> BatchStatus:
        raise NotImplementedError

    def batch_results(
        self, batch_id: str, requests: dict[str, GenerationRequest] | None = None
    ) -> list[BatchResult]:
        """Every finished request's result (answers and errors), once `batch_status` is not
        in progress. Requests cancelled before they ran are absent; expired ones come back
        as retryable errors. `requests` (the batch's, by `custom_id`), when given, let each
        answer be read exactly as the sync call's is (a JSON schema's wrapper or forced
        tool unwrapped); without them answers are read as if no schema had been sent."""
        raise NotImplementedError

    def batch_cancel(self, batch_id: str) -> None:
        """Ask the provider to stop the batch; a batch already ended is not an error."""
        raise NotImplementedError
