from dataclasses import dataclass, field


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

    def generate(self, request: GenerationRequest, on_retry=None) -> Generation:
        """One answer. `on_retry(message)` is told about each retry, for the run's log."""
        raise NotImplementedError
