"""What a model call costs, in nano-dollars (integers: sums stay exact across chunks).

Prices come from AI_PRICES (per million tokens, for private models or overrides), else from
the price table `genai-prices` bundles with its release: read from the installed package,
never fetched (its optional auto-update is not started). A model neither knows has no price:
its cost is None ("unknown"), never a guess. The `local` stand-in provider runs in this
process and calls nothing that bills: its price is declared 0 (unless AI_PRICES names its
model: tests and benchmarks price the stand-in to measure what a run would cost).
"""

import math
from decimal import Decimal
from functools import lru_cache, partial
from typing import TYPE_CHECKING

import genai_prices
import genai_prices.data_snapshot
import genai_prices.types
from django.conf import settings

if TYPE_CHECKING:
    from workflows.providers.base import GenerationRequest

NANOS_PER_USD = 1_000_000_000


def usd_of(nanos: int) -> float:
    """Nano-dollars as the API shows dollars (9 decimals: what a nano-dollar keeps)."""
    return round(nanos / NANOS_PER_USD, 9)


# OpenAI's and Anthropic's batch APIs charge half the price of the same call made live.
BATCH_DISCOUNT = Decimal("0.5")
# Our provider names -> genai-prices provider ids (`local` is priced 0 here, not looked up).
PRICE_PROVIDERS = {"openai": "openai", "anthropic": "anthropic"}
# Tokens of a call not made yet: its prompt at this many characters a token (the usual rule
# of thumb for English with GPT and Claude tokenizers), its answer at the request's
# `maxTokens` (an upper bound), else this many.
CHARS_PER_TOKEN = 4
ESTIMATE_OUTPUT_TOKENS = 300


def call_cost_nanos(provider: str, model: str, usage: dict, *, batch: bool = False) -> int | None:
    """The cost of one call (or its corrective retry included) from its usage: `inputTokens`
    (all prompt tokens, cached included), `cachedInputTokens` (read from the provider's
    prompt cache), `cacheWriteTokens` (Anthropic: written to it), `outputTokens`. None when
    the model's price is unknown."""
    price = settings.AI_PRICES.get(model)
    if price is None and provider == "local":
        return 0
    if price is not None:
        cached = usage.get("cachedInputTokens", 0)
        usd = (
            Decimal(str(price["input"])) * (usage.get("inputTokens", 0) - cached)
            + Decimal(str(price["cachedInput"])) * cached
            + Decimal(str(price["output"])) * usage.get("outputTokens", 0)
        ) / 1_000_000
    else:
        usd = _table_price(PRICE_PROVIDERS.get(provider), model, _usage_key(usage))
        if usd is None:
            return None
    if batch:
        usd *= BATCH_DISCOUNT
    return int((usd * NANOS_PER_USD).to_integral_value())


def model_priced(provider: str, model: str) -> bool:
    """Whether calls to this model have a known price."""
    return call_cost_nanos(provider, model, {"inputTokens": 1, "outputTokens": 1}) is not None


def _usage_key(usage: dict) -> tuple[int, int, int, int]:
    return (
        usage.get("inputTokens", 0),
        usage.get("cachedInputTokens", 0),
        usage.get("cacheWriteTokens", 0),
        usage.get("outputTokens", 0),
    )


_UNKNOWN = object()  # a model the table does not know


def _table_price(price_provider: str | None, model: str, key: tuple) -> Decimal | None:
    """The table's price of a call's usage (`_usage_key`). A model with one price per token
    of each kind (most: no tiers, no price that changes on a date) is priced from its rates,
    which the table's own calculation gave once (`_table_rates`); real calls differ in
    their token counts, and the table's calculation cost 90 us a call (a twentieth of the
    call's CPU). Any other model, and a usage whose cached tokens exceed its input (which
    the table refuses), is priced by the table itself."""
    if price_provider is None:
        return None
    input_tokens, cached, cache_write, _output = key
    rates = _table_rates(price_provider, model)
    if rates is _UNKNOWN:
        return None
    if rates is None or cached + cache_write > input_tokens:
        return _table_calc(price_provider, model, key)
    return _linear(rates, key)


def _linear(rates: tuple[Decimal, ...], key: tuple) -> Decimal:
    return rates[0] + sum(rate * count for rate, count in zip(rates[1:], key, strict=True))


@lru_cache(maxsize=256)
def _table_rates(price_provider: str, model: str):
    """(per call, per input token, per cached input token more, per cache write token more,
    per output token) when the model's price is linear in `_usage_key`'s counts, from the
    table's own prices of one token of each; `_UNKNOWN` when the table does not know the
    model; None when its price has tiers or changes on a date: those are priced call by
    call. Checked against the table on one more usage before they are used (genai-prices'
    types are its own: the version is bounded in pyproject.toml)."""
    try:
        _provider, info = genai_prices.data_snapshot.get_snapshot().find_provider_model(
            model, None, price_provider, None
        )
    except LookupError:
        return _UNKNOWN
    prices = info.prices
    if not isinstance(prices, genai_prices.types.ModelPrice) or any(
        isinstance(price, genai_prices.types.TieredPrices) for price in vars(prices).values()
    ):
        return None
    calc = partial(_table_calc, price_provider, model)
    check = (1_234_567, 234_567, 34_567, 456_789)
    probes = [calc(key) for key in ((0, 0, 0, 0), (1, 0, 0, 0), (1, 1, 0, 0), (1, 0, 1, 0))]
    probes += [calc((0, 0, 0, 1)), calc(check)]
    if None in probes:  # the table refused one: price every call by the table
        return None
    per_call, one_input, one_cached, one_written, one_output, checked = probes
    per_input = one_input - per_call
    rates = (
        per_call,
        per_input,
        one_cached - one_input,
        one_written - one_input,
        one_output - per_call,
    )
    return rates if _linear(rates, check) == checked else None


def _table_calc(price_provider: str, model: str, key: tuple) -> Decimal | None:
    """The table's own calculation (not cached: a price that changes on a date is the
    table's at the time of the call); None for a usage it refuses (cached tokens over the
    input: a server's odd report has no price rather than a guessed one)."""
    input_tokens, cached, cache_write, output_tokens = key
    try:
        calculation = genai_prices.calc_price(
            genai_prices.Usage(
                input_tokens=input_tokens,
                cache_read_tokens=cached,
                cache_write_tokens=cache_write,
                output_tokens=output_tokens,
            ),
            model,
            provider_id=price_provider,
        )
    except (LookupError, ValueError):
        return None
    return Decimal(str(calculation.total_price))


def request_estimate(provider, request: "GenerationRequest", *, batch: bool = False) -> dict:
    """What a call not made yet is reserved at against a run's budget: its prompt at
    CHARS_PER_TOKEN characters a token, its answer at the most the provider asks for (the
    request's `maxTokens`, or the provider's own default: Anthropic's 1,024), else
    ESTIMATE_OUTPUT_TOKENS, priced as its answer will be (0 without a price)."""
    usage = {
        "calls": 1,
        "inputTokens": math.ceil((len(request.system) + len(request.prompt)) / CHARS_PER_TOKEN),
        "outputTokens": provider.answer_tokens_max(request) or ESTIMATE_OUTPUT_TOKENS,
    }
    model = request.model or getattr(provider, "default_model", "")
    cost = call_cost_nanos(provider.name, model, usage, batch=batch)
    return {**usage, "costNanoUsd": cost or 0}
