"""Usage in one shape for every provider, and counted in the metrics.

`inputTokens` counts every prompt token, those read from the provider's prompt cache
(`cachedInputTokens`) and written to it included.
"""

from config.metrics import MODEL_TOKENS

# Metric label -> usage key; cached input is part of the input, counted apart too.
TOKEN_KINDS = (
    ("input", "inputTokens"),
    ("cached_input", "cachedInputTokens"),
    ("output", "outputTokens"),
)


def count_usage(labels: tuple[str, str], usage: dict) -> int:
    """Counts a generation's tokens in the metrics; returns those the rate limit counts."""
    used = 0
    for kind, key in TOKEN_KINDS:
        count = usage.get(key, 0)
        MODEL_TOKENS.labels(*labels, kind).inc(count)
        if kind != "cached_input":  # counted in the input already
            used += count
    return used


def openai_usage(usage) -> dict:
    if usage is None:
        return {"inputTokens": 0, "cachedInputTokens": 0, "outputTokens": 0}
    details = getattr(usage, "prompt_tokens_details", None)
    return {
        "inputTokens": usage.prompt_tokens or 0,
        "cachedInputTokens": (getattr(details, "cached_tokens", None) or 0) if details else 0,
        "outputTokens": usage.completion_tokens or 0,
    }


def anthropic_usage(usage) -> dict:
    # Anthropic's `input_tokens` leaves out the tokens read from and written to the cache.
    cached = getattr(usage, "cache_read_input_tokens", None) or 0
    written = getattr(usage, "cache_creation_input_tokens", None) or 0
    result = {
        "inputTokens": usage.input_tokens + cached + written,
        "cachedInputTokens": cached,
        "outputTokens": usage.output_tokens,
    }
    if written:
        result["cacheWriteTokens"] = written
    return result
