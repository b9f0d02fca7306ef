"""A worker's start-up work (`jobs.warm`): what the first chunk of a process would pay for is
done when the worker starts, without the network and without counting as a model call."""

import sys

from celery.signals import worker_init, worker_process_init

from config.celery import start_worker_process, warm_up_worker
from config.metrics import MODEL_CALLS
from jobs.warm import providers_configured, worker_process_warm_up, worker_warm_up
from workflows import templating
from workflows.providers import PROVIDERS, provider_get
from workflows.providers.network import NetworkProvider


def _calls() -> float:
    return sum(
        sample.value
        for metric in MODEL_CALLS.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


def test_the_warm_up_takes_each_sdk_through_a_call_answered_in_memory_and_counts_none(
    settings,
):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens: no call may go out
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"
    calls = _calls()
    templating._compile.cache_clear()
    templating._reads.cache_clear()
    worker_warm_up()
    assert {"openai", "anthropic"} <= set(sys.modules)
    assert templating._reads.cache_info().currsize >= 2  # the transform's templates, read
    assert templating._compile.cache_info().currsize >= 1  # and the one the engine renders
    assert _calls() == calls


def test_each_pool_process_builds_its_providers_clients_at_start(settings):
    settings.OPENAI_BASE_URL, settings.ANTHROPIC_API_KEY = "http://127.0.0.1:9/v1", "key"
    for name in PROVIDERS:
        provider = provider_get(name)
        if isinstance(provider, NetworkProvider):
            provider._client_instance = None
    worker_process_warm_up()
    built = [
        provider_get(name)._client_instance is not None
        for name in PROVIDERS
        if isinstance(provider_get(name), NetworkProvider)
    ]
    assert built and all(built)


def test_the_worker_signals_run_the_warm_up():
    assert warm_up_worker in [receiver() for _, receiver in worker_init.receivers]
    assert start_worker_process in [receiver() for _, receiver in worker_process_init.receivers]


def test_only_the_providers_a_deployment_is_set_up_for_are_warmed_up(settings):
    """An SDK costs each worker process tens of MB: one never configured waits for its
    first use."""
    settings.AI_PROVIDER = "local"
    settings.OPENAI_API_KEY = settings.OPENAI_BASE_URL = ""
    settings.ANTHROPIC_API_KEY, settings.ANTHROPIC_BASE_URL = "", "http://127.0.0.1:9"
    assert providers_configured() == ["local", "anthropic"]
    settings.AI_PROVIDER, settings.ANTHROPIC_BASE_URL = "openai", ""
    assert providers_configured() == ["openai"]
