"""What a worker does once, when it starts, so that the first chunk a worker process takes
costs what a later one does (`config.celery` calls these from Celery's start-up signals).

Left to the first task, the first run after a deploy paid for importing the model SDKs
(about a second of CPU per process for OpenAI's), for their request and response code's
first use, for Jinja's lexer and compiler and the step types' first use, and for each
process's HTTP clients (their TLS context), all while its entities waited.

- `worker_warm_up`, in the worker's main process before its pool forks: imports the SDK of
  every provider the deployment is set up for (`AI_PROVIDER`, and those given an API key or
  a base URL: an SDK costs each process tens of MB, so one never configured is left to its
  first use) and takes one call of each through its request building and response parsing
  (answered in memory: no network, no metrics, no rate limit), and takes a
  representative entity through the step types that need no outside service, in a dry run
  (templates compiled, schema validators built). What it loads is shared by every process
  the pool forks.
- `worker_process_warm_up`, in each pool process after the fork: the network providers'
  clients (an HTTP connection pool and TLS context per process, not shared across a fork).
"""

import logging

import httpx2  # the HTTP library the model SDKs are built on
from django.conf import settings

from jobs.engine.steps import steps_run
from workflows.providers import PROVIDERS, GenerationRequest, provider_get
from workflows.providers.network import NetworkProvider
from workflows.steps.runtime import DryRun, EntityState

logger = logging.getLogger(__name__)

# Answers in each SDK's wire format, for the in-memory calls.
_ANSWERS = {
    "openai": {
        "id": "chatcmpl-warm",
        "object": "chat.completion",
        "created": 0,
        "model": "warm",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": "ok"},
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    },
    "anthropic": {
        "id": "msg_warm",
        "type": "message",
        "role": "assistant",
        "model": "warm",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    },
}

# The step types a run takes most entities through, with the features they compile: a
# template of reads only (rendered without the engine) and one the engine compiles, slugify,
# schema rules, a condition.
_STEPS = [
    {
        "id": "transform",
        "type": "transform",
        "config": {
            "operations": [
                {"op": "trim", "field": "title"},
                {"op": "set", "field": "slug", "value": "{{ entity.brand }} {{ entity.title }}"},
                {"op": "slugify", "field": "slug"},
                {"op": "set", "field": "teaser", "value": "{{ entity.title | truncate(20) }}"},
            ]
        },
    },
    {
        "id": "validate",
        "type": "validate",
        "config": {
            "rules": [
                {"field": "title", "required": True, "type": "string", "maxLength": 200},
                {"field": "price", "type": "number", "minimum": 0},
            ]
        },
    },
    {
        "id": "condition",
        "type": "condition",
        "config": {"if": {"field": "price", "operator": "lt", "value": 10}},
    },
]
_SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "price": {"type": "number"}},
}


def providers_configured() -> list[str]:
    """The providers this deployment is set up to call: the default one, and those given an
    API key or a base URL."""
    given = {
        "openai": settings.OPENAI_API_KEY or settings.OPENAI_BASE_URL,
        "anthropic": settings.ANTHROPIC_API_KEY or settings.ANTHROPIC_BASE_URL,
    }
    return [name for name in PROVIDERS if name == settings.AI_PROVIDER or given.get(name)]


def worker_warm_up() -> None:
    """Before the pool forks: SDKs imported and exercised, step types run once."""
    for name in providers_configured():
        provider = provider_get(name)  # a network provider imports its SDK here
        if isinstance(provider, NetworkProvider) and name in _ANSWERS:
            _sdk_call(provider, _ANSWERS[name])
    state = EntityState(
        entity_id="warm",
        status="draft",
        data={"title": " Warm ", "brand": "Acme", "price": 1},
        committed={},
        entity_type_schema=_SCHEMA,
    )
    steps_run(states=[state], steps=_STEPS, run_id="warm", workflow_id="warm", engine=DryRun())
    if not state.alive and state.error:
        logger.warning("The worker's warm-up run failed: %s", state.error)


def worker_process_warm_up() -> None:
    """After the fork, in each pool process: the network providers' HTTP clients."""
    for name in providers_configured():
        provider = provider_get(name)
        if isinstance(provider, NetworkProvider):
            provider.client  # noqa: B018  (built on first use: built now)


def _sdk_call(provider: NetworkProvider, answer: dict) -> None:
    """One call as the provider makes it (its `_call`: the SDK's request code, the answer
    read as JSON), answered in memory."""
    sdk = provider.sdk
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=answer))
    with sdk.DefaultHttpxClient(transport=transport) as http:
        options = {"base_url": "http://warm.invalid", "api_key": "warm", "http_client": http}
        client = sdk.OpenAI(**options) if provider.name == "openai" else sdk.Anthropic(**options)
        provider._call(client, GenerationRequest(prompt="warm", model="warm", max_tokens=1))
