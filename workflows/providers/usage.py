"""Usage in one shape for every provider, and counted in the metrics.

`inputTokens` counts every prompt token, those read from the provider's prompt cache
(`cachedInputTokens`) and written to it included.

The metrics' `model` label takes its values from a bounded set, whatever names users type
in their steps: the configured models (AI_MODEL, each provider's default), the models of
AI_PRICES, and the models genai-prices knows (under its own name: `gpt-4o-mini-2024-07-18`
counts as `gpt-4o-mini`); any other model counts as `other`.
"""

import re
from functools import lru_cache

import genai_prices
from django.conf import settings

from config.metrics import MODEL_CALLS, MODEL_TOKENS
from workflows.pricing import PRICE_PROVIDERS

# The most tokens of one kind one call may report. No model reads or writes a hundred
# million tokens in a call; a count past this is a server's garbage, and summed into a run's
# counters (64-bit) it failed the chunk's commit, every delivery of it, paying its calls again.
USAGE_MAX_TOKENS = 100_000_000

OTHER_MODEL = "other"
UNKNOWN_MODEL = "unknown"  # a batch request's error: the provider does not say the model
_OUTCOME = re.compile(r"[0-9]{3}|[a-z][a-z_ ]{0,31}")


def model_label(provider: str, model: str) -> str:
    """The `model` label of a call of `model` (empty: the provider's default)."""
    from workflows.providers import PROVIDERS  # the package imports this module

    defaults = {getattr(cls, "default_model", "") for cls in PROVIDERS.values()}
    model = model or settings.AI_MODEL or getattr(PROVIDERS.get(provider), "default_model", "")
    if model and (model == settings.AI_MODEL or model in defaults or model in settings.AI_PRICES):
        return model
    return _table_model(provider, model) or OTHER_MODEL


@lru_cache(maxsize=4096)
def _table_model(provider: str, model: str) -> str | None:
    """genai-prices' name of the model, when it has a price for it."""
    price_provider = PRICE_PROVIDERS.get(provider)
    if price_provider is None or not model:
        return None
    try:
        calculation = genai_prices.calc_price(
            genai_prices.Usage(input_tokens=1, output_tokens=1), model, provider_id=price_provider
        )
    except LookupError:
        return None
    return calculation.model.id


def outcome_label(status: str) -> str:
    """The `outcome` label of a failed call: an HTTP status or a provider's short error
    kind (`timeout`, `expired`, `overloaded_error`), else `error`."""
    return status if _OUTCOME.fullmatch(status) else "error"


def count_batch_results(provider: str, results: list) -> list:
    """Each answer of a batch counts as a model call (and its tokens) once its results are
    read; an error counts under its status, with the model `unknown`."""
    for result in results:
        if result.generation is not None:
            labels = (provider, model_label(provider, result.generation.model))
            count_usage(labels, result.generation.usage)
            MODEL_CALLS.labels(*labels, "ok").inc()
        else:
            parts = result.error.split(": ", 2)
            outcome = outcome_label(parts[1]) if len(parts) > 1 else "error"
            MODEL_CALLS.labels(provider, UNKNOWN_MODEL, outcome).inc()
    return results


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


def _count(usage: dict, name: str) -> int:
    """A token count of an answer's `usage` (JSON): 0 when absent or null; TypeError when it
    is not a whole number (a string, a bool, a fraction) or past USAGE_MAX_TOKENS."""
    value = usage.get(name)
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= USAGE_MAX_TOKENS:
        raise TypeError(f"usage.{name} is {value!r}, not a count")
    return value


def openai_usage(usage: dict | None) -> dict:
    """A chat completion's `usage`, as JSON, in our names (TypeError: not a usage)."""
    if usage is None:
        return {"inputTokens": 0, "cachedInputTokens": 0, "outputTokens": 0}
    details = usage.get("prompt_tokens_details") or {}
    prompt, cached = _count(usage, "prompt_tokens"), _count(details, "cached_tokens")
    if cached > prompt:  # priced, it made the call's cost negative: spending given back
        raise TypeError(f"usage: {cached} cached tokens of {prompt} prompt tokens")
    return {
        "inputTokens": prompt,
        "cachedInputTokens": cached,
        "outputTokens": _count(usage, "completion_tokens"),
    }


def anthropic_usage(usage: dict) -> dict:
    """A message's `usage`, as JSON, in our names (TypeError: not a usage)."""
    # Anthropic's `input_tokens` leaves out the tokens read from and written to the cache.
    cached = _count(usage, "cache_read_input_tokens")
    written = _count(usage, "cache_creation_input_tokens")
    result = {
        "inputTokens": _count(usage, "input_tokens") + cached + written,
        "cachedInputTokens": cached,
        "outputTokens": _count(usage, "output_tokens"),
    }
    if written:
        result["cacheWriteTokens"] = written
    return result
