"""Prices: the bundled table read offline, AI_PRICES over it, unknown models unpriced."""

import socket

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import env_prices
from workflows import pricing

USAGE = {"inputTokens": 1_000_000, "cachedInputTokens": 200_000, "outputTokens": 1_000_000}


def test_the_bundled_table_prices_a_call_with_the_network_unreachable(monkeypatch):
    pricing._table_rates.cache_clear()

    def refuse(*args, **kwargs):
        raise OSError("network unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    nanos = pricing.call_cost_nanos("openai", "gpt-5-mini", USAGE)
    assert nanos == round((0.8 * 0.25 + 0.2 * 0.025 + 2.0) * 1e9)
    assert pricing.call_cost_nanos("openai", "gpt-5-mini", USAGE, batch=True) == nanos // 2


def test_ai_prices_overrides_and_adds_models(settings):
    settings.AI_PRICES = {
        "gpt-5-mini": {"input": 1.0, "cachedInput": 0.5, "output": 3.0},
        "private-7b": {"input": 0.1, "cachedInput": 0.1, "output": 0.2},
    }
    assert pricing.call_cost_nanos("openai", "gpt-5-mini", USAGE) == round(
        (0.8 * 1 + 0.2 * 0.5 + 3) * 1e9
    )
    assert pricing.call_cost_nanos("openai", "private-7b", USAGE) == round(0.3 * 1e9)


def test_an_unknown_model_has_no_price_and_local_costs_nothing():
    assert pricing.call_cost_nanos("openai", "private-7b", USAGE) is None
    assert pricing.call_cost_nanos("anthropic", "claude-nonexistent", USAGE) is None
    assert pricing.call_cost_nanos("local", "anything", USAGE) == 0


def test_ai_prices_reads_json_with_cached_input_defaulting_to_input(monkeypatch):
    monkeypatch.setenv("AI_PRICES", '{"m": {"input": 2, "output": 4}}')
    assert env_prices("AI_PRICES") == {"m": {"input": 2.0, "cachedInput": 2.0, "output": 4.0}}


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1]",
        '{"m": 3}',
        '{"m": {"input": 1}}',
        '{"m": {"input": -1, "output": 1}}',
        '{"m": {"input": "1", "output": 1}}',
        '{"m": {"input": 1, "output": 1, "cached": 1}}',
        '{"m": {"input": true, "output": 1}}',
    ],
)
def test_a_bad_ai_prices_stops_the_start_naming_it(monkeypatch, raw):
    monkeypatch.setenv("AI_PRICES", raw)
    with pytest.raises(ImproperlyConfigured, match="AI_PRICES="):
        env_prices("AI_PRICES")


def test_a_priced_call_adds_its_cost_to_the_metrics(settings):
    from config.metrics import MODEL_COST
    from workflows.providers import provider_get
    from workflows.steps.ai_generate import priced

    settings.AI_PRICES = {"house-model": {"input": 2.0, "cachedInput": 0.5, "output": 8.0}}
    cost = MODEL_COST.labels("openai", "house-model")
    before = cost._value.get()
    usage = priced({"inputTokens": 1_000_000, "outputTokens": 500_000}, provider_get("openai"),
                   "house-model")  # fmt: skip
    assert usage["costNanoUsd"] == 6 * pricing.NANOS_PER_USD
    assert cost._value.get() - before == pytest.approx(6.0)


def test_a_table_model_is_priced_from_its_rates_as_the_table_prices_it():
    """Calls differ in their token counts, so the table's own calculation (90 us) ran per
    call; a model with one price per kind of token is priced from rates the table gave once.
    Every OpenAI and Anthropic model of the bundled table, on usages below and above the
    tiers' thresholds (200,000 input tokens): the same nano-dollars as the table's, the
    models with tiers or a price that changes on a date priced by the table itself."""
    import genai_prices.data_snapshot
    import genai_prices.types

    pricing._table_rates.cache_clear()
    usages = [
        {"inputTokens": 0, "outputTokens": 0},
        {"inputTokens": 1234, "cachedInputTokens": 200, "outputTokens": 321},
        {
            "inputTokens": 90_000,
            "cachedInputTokens": 10_000,
            "cacheWriteTokens": 5_000,
            "outputTokens": 7_000,
        },
        {"inputTokens": 450_000, "cachedInputTokens": 100_000, "outputTokens": 30_000},
    ]
    snapshot = genai_prices.data_snapshot.get_snapshot()
    linear = by_table = 0
    for provider, price_provider in pricing.PRICE_PROVIDERS.items():
        models = next(each for each in snapshot.providers if each.id == price_provider).models
        for model in models:
            if pricing._table_calc(price_provider, model.id, (1, 0, 0, 1)) is None:
                continue  # an id the table finds by another name (a fine-tune's "ft:...")
            rates = pricing._table_rates(price_provider, model.id)
            tiered = not isinstance(model.prices, genai_prices.types.ModelPrice) or any(
                isinstance(price, genai_prices.types.TieredPrices)
                for price in vars(model.prices).values()
            )
            assert rates is not pricing._UNKNOWN, model.id
            assert rates is None or not tiered, model.id
            linear += rates is not None
            by_table += rates is None
            for usage in usages:
                key = pricing._usage_key(usage)
                expected = pricing._table_calc(price_provider, model.id, key)
                assert pricing._table_price(price_provider, model.id, key) == expected, (
                    model.id,
                    usage,
                )
                if expected is not None:
                    assert pricing.call_cost_nanos(provider, model.id, usage) == int(
                        (expected * pricing.NANOS_PER_USD).to_integral_value()
                    )
    assert linear > 20 and by_table > 0, (linear, by_table)


def test_a_usage_the_table_refuses_has_no_price_rather_than_a_guessed_one():
    """A server may report more cached tokens than prompt tokens: the table refuses such a
    usage, and the rates, which would price it (below zero), are not used for it."""
    assert pricing._table_rates("openai", "gpt-4o") not in (None, pricing._UNKNOWN)
    odd = {"inputTokens": 0, "cachedInputTokens": 10, "outputTokens": 5}
    assert pricing.call_cost_nanos("openai", "gpt-4o", odd) is None
    assert pricing.call_cost_nanos("anthropic", "claude-haiku-4-5", odd) is None
    fine = {"inputTokens": 10, "cachedInputTokens": 10, "outputTokens": 5}
    assert pricing.call_cost_nanos("openai", "gpt-4o", fine) > 0
