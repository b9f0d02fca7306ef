"""The real SDKs over real HTTP against OpenAI- and Anthropic-compatible servers on loopback."""

import json

import pytest

from config.metrics import MODEL_CALLS
from jobs.models import RunLog
from tests.servers import Reply

pytestmark = pytest.mark.django_db


def _step(provider: str, **config) -> dict:
    return {
        "id": "gen",
        "type": "ai_generate",
        "config": {
            "prompt": "Describe {{ entity.title }}",
            "outputField": "description",
            "provider": provider,
            **config,
        },
    }


@pytest.fixture(params=["openai", "anthropic"])
def llm(request):
    return request.param, request.getfixturevalue(f"{request.param}_server")


def test_success_writes_the_answer_and_records_usage(run_steps, llm):
    provider, fake = llm
    fake.default = Reply(text="A fine lamp.", input_tokens=11, cached_tokens=4)
    [item], [entity] = run_steps(
        [_step(provider, model="m-1", temperature=0.2, maxTokens=50, system="Be brief")],
        {"title": "Lamp"},
    )
    assert item.status == "completed", item.error
    assert entity.data["description"] == "A fine lamp."
    # "m-1" has no price: the call is counted unpriced, never given a guessed cost.
    call = {"inputTokens": 11, "cachedInputTokens": 4, "outputTokens": 7, "calls": 1}
    call["unpricedCalls"] = 1
    assert item.usage == {**call, "steps": {"gen": call}}
    [request] = fake.requests
    assert request["model"] == "m-1" and request["max_tokens"] == 50
    assert request["temperature"] == 0.2
    assert request["messages"][-1]["content"] == "Describe Lamp"
    run = item.run
    run.refresh_from_db()
    assert (run.input_tokens, run.cached_input_tokens, run.output_tokens) == (11, 4, 7)
    assert run.unpriced_calls == 1 and run.cost_usd is None


def test_anthropic_requests_mark_the_system_prompt_cacheable(run_steps, anthropic_server):
    [item], _ = run_steps([_step("anthropic", system="Be brief")], {"title": "Lamp"})
    assert item.status == "completed", item.error
    [request] = anthropic_server.requests
    assert request["system"] == [
        {"type": "text", "text": "Be brief", "cache_control": {"type": "ephemeral"}}
    ]


@pytest.mark.parametrize(
    ("provider", "model", "expected_usd"),
    [
        # 1M prompt tokens of which 200k cached, and 1M answer tokens, at the table's prices.
        ("openai", "gpt-5-mini", 0.8 * 0.25 + 0.2 * 0.025 + 2.0),
        ("anthropic", "claude-haiku-4-5", 0.8 * 1 + 0.2 * 0.1 + 5.0),
    ],
)
def test_a_known_model_is_priced_from_its_usage_cached_tokens_cheaper(
    run_steps, request, provider, model, expected_usd
):
    fake = request.getfixturevalue(f"{provider}_server")
    fake.default = Reply(input_tokens=1_000_000, cached_tokens=200_000, output_tokens=1_000_000)
    [item], _ = run_steps([_step(provider, model=model)], {"title": "Lamp"})
    assert item.status == "completed", item.error
    run = item.run
    run.refresh_from_db()
    assert run.unpriced_calls == 0
    assert run.cost_usd == pytest.approx(expected_usd)
    assert item.usage["costNanoUsd"] == round(expected_usd * 1e9)


def test_429_honours_retry_after(run_steps, llm):
    provider, fake = llm
    fake.script = [Reply(status=429, headers={"Retry-After": "1"}, error="slow down")]
    [item], _ = run_steps([_step(provider)], {"title": "Lamp"})
    assert item.status == "completed", item.error
    assert len(fake.requests) == 2
    assert fake.times[1] - fake.times[0] >= 0.9  # waited as told, not the 0.01 s backoff
    log = RunLog.objects.get(run=item.run, level="warning")
    assert f"{provider}: 429: slow down; retrying in 1.0s" in log.message


def test_500_then_success(run_steps, llm):
    provider, fake = llm
    fake.script = [Reply(status=500), Reply(status=503)]
    [item], _ = run_steps([_step(provider)], {"title": "Lamp"})
    assert item.status == "completed", item.error
    assert len(fake.requests) == 3


def test_errors_after_the_last_attempt_fail_the_entity_naming_provider_and_status(
    run_steps, llm, settings
):
    provider, fake = llm
    settings.AI_MAX_ATTEMPTS = 3
    fake.default = Reply(status=500, error="the model is on fire")
    items, _ = run_steps([_step(provider)], {"title": "Lamp"}, {"title": "Chair"})
    for item in items:
        assert item.status == "failed"
        assert item.error == f"{provider}: 500: the model is on fire (after 3 attempts)"
    assert len(fake.requests) == 6


def test_a_client_error_is_not_retried(run_steps, llm):
    provider, fake = llm
    fake.default = Reply(status=400, error="bad model name")
    [item], _ = run_steps([_step(provider)], {"title": "Lamp"})
    assert item.error == f"{provider}: 400: bad model name"
    assert len(fake.requests) == 1


ODD_TEXT = {"role": "assistant", "content": ["a", "list"]}
ODD_ANSWERS = {
    "no-choice": {"choices": []},
    "no-answer": {"object": "chat.completion"},
    "content-not-blocks": {"content": "text"},
    "an-array": [1, 2],
    "empty": {},
    "text-a-list": {
        "choices": [{"message": ODD_TEXT}],
        "content": [{"type": "text", "text": ["a", "list"]}],
        "usage": {"prompt_tokens": 1, "input_tokens": 1, "output_tokens": 1},
    },
    "count-a-string": {
        "choices": [{"message": {"content": "Fine."}}],
        "content": [{"type": "text", "text": "Fine."}],
        "usage": {"prompt_tokens": "12", "input_tokens": "12", "output_tokens": 3},
    },
    # Summed into the run's 64-bit counters, two such answers failed the chunk's commit.
    "count-past-any-model": {
        "choices": [{"message": {"content": "Fine."}}],
        "content": [{"type": "text", "text": "Fine."}],
        "usage": {"prompt_tokens": 2**62, "input_tokens": 2**62, "output_tokens": 1},
    },
    "model-an-object": {
        "model": {"id": "m"},
        "choices": [{"message": {"content": "Fine."}}],
        "content": [{"type": "text", "text": "Fine."}],
        "usage": {"input_tokens": 1, "output_tokens": 1},
    },
}


@pytest.mark.parametrize("body", ODD_ANSWERS.values(), ids=ODD_ANSWERS.keys())
def test_a_200_not_in_the_answers_shape_is_asked_again_then_fails_the_entity_naming_it(
    run_steps, llm, body, settings
):
    """The answer is read as JSON (the SDK's typed model of it cost a tenth of a call's
    CPU): a body that is not a chat completion or a message (cut short, or a proxy's page)
    is asked again as a 5xx is, and as a batch line with one is; after the last attempt it
    fails its entity with the provider named. Each call is counted under its status."""
    provider, fake = llm
    settings.AI_MAX_ATTEMPTS = 3
    fake.default = Reply(body=body)
    before = _calls(provider, "200")
    [item], _ = run_steps([_step(provider)], {"title": "Lamp"})
    assert item.status == "failed"
    assert item.error.startswith(f"{provider}: 200: an answer not"), item.error
    assert item.error.endswith("(after 3 attempts)"), item.error
    assert len(fake.requests) == 3
    assert _calls(provider, "200") == before + 3


def test_more_cached_tokens_than_prompt_tokens_is_not_an_answer_and_costs_nothing(
    run_steps, openai_server, settings
):
    """Priced from AI_PRICES, 1,000 cached of 10 prompt tokens made a negative cost: the run's
    cost and its budget's spending went down, letting more calls start past the budget."""
    settings.AI_MAX_ATTEMPTS = 2
    settings.AI_PRICES = {"m-1": {"input": 1.0, "cachedInput": 0.1, "output": 2.0}}
    openai_server.default = Reply(input_tokens=10, cached_tokens=1000)
    [item], _ = run_steps(
        [_step("openai", model="m-1")], {"title": "Lamp"}, budget={"maxCostUsd": 1}
    )
    assert item.status == "failed"
    assert "1000 cached tokens of 10 prompt tokens" in item.error, item.error
    run = item.run
    run.refresh_from_db()
    assert (run.cost_nano_usd, run.spent_cost_nano_usd, run.input_tokens) == (0, 0, 0)


def test_a_200_not_an_answer_then_an_answer_completes_the_entity(run_steps, llm):
    provider, fake = llm
    fake.script = [Reply(body={"choices": [], "content": "cut"}), Reply(text="A fine lamp.")]
    before = _calls(provider, "200")
    [item], [entity] = run_steps([_step(provider)], {"title": "Lamp"})
    assert item.status == "completed", item.error
    assert entity.data["description"] == "A fine lamp."
    assert len(fake.requests) == 2 and _calls(provider, "200") == before + 1
    assert item.usage["calls"] == 1  # the answer's usage: the odd body reported none


def _calls(provider: str, outcome: str) -> float:
    """`workflows_model_calls_total` of this process for the provider and outcome."""
    return sum(
        sample.value
        for family in MODEL_CALLS.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
        and sample.labels["provider"] == provider
        and sample.labels["outcome"] == outcome
    )


def test_timeout_is_retried_then_fails_and_the_run_goes_on(run_steps, llm, settings):
    provider, fake = llm
    settings.AI_TIMEOUT_S = 0.3
    settings.AI_MAX_ATTEMPTS = 2
    fake.default = Reply(delay=1.0)
    items, _ = run_steps([_step(provider), {"type": "publish", "config": {}}], {"title": "Lamp"})
    assert items[0].status == "failed"
    assert items[0].error == f"{provider}: timeout: no answer within 0.3s (after 2 attempts)"
    assert items[0].run.status == "failed"


def test_an_answer_dripping_in_is_a_timeout_once_the_attempt_took_its_time(
    run_steps, llm, settings
):
    """AI_TIMEOUT_S bounds a whole attempt, not each read: an answer whose every piece
    comes within the read timeout, but whose whole would take many times it, holds no
    worker (and no chunk's lease) for as long as the server likes."""
    provider, fake = llm
    settings.AI_TIMEOUT_S = 0.5
    settings.AI_MAX_ATTEMPTS = 1
    fake.default = Reply(drip=0.2)  # 20-odd pieces: 4 s and more
    [item], _ = run_steps([_step(provider)], {"title": "Lamp"})
    assert item.status == "failed"
    assert item.error == f"{provider}: timeout: no answer within 0.5s"


def test_an_answer_larger_than_the_bound_fails_the_entity_without_asking_again(
    run_steps, llm, settings
):
    """The SDKs read a whole answer into memory: a server answering gigabytes within the
    deadline held them in the worker, once per call in flight. The read stops at
    AI_MAX_ANSWER_BYTES; asked again, it would read (and be billed) as much."""
    provider, fake = llm
    settings.AI_MAX_ANSWER_BYTES = 64 * 1024
    fake.script = [Reply(text="x" * 200_000)]
    items, _ = run_steps([_step(provider)], {"title": "Lamp"}, {"title": "Chair"})
    failed = [item for item in items if item.status == "failed"]
    assert [item.error for item in failed] == [
        f"{provider}: answer too large: an answer larger than 65536 bytes (AI_MAX_ANSWER_BYTES)"
    ]
    assert [item.status for item in items if item not in failed] == ["completed"]
    assert len(fake.requests) == 2  # one each: the large answer was not asked again


def test_invalid_json_gets_one_corrective_retry(run_steps, llm):
    provider, fake = llm
    schema = {
        "type": "object",
        "required": ["tags"],
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
    }
    fake.script = [Reply(text="Sure! Here are tags: lamp"), Reply(text='{"tags": ["lamp"]}')]
    [item], [entity] = run_steps(
        [_step(provider, responseFormat="json", jsonSchema=schema, outputField="meta")],
        {"title": "Lamp"},
    )
    assert item.status == "completed", item.error
    assert entity.data["meta"] == {"tags": ["lamp"]}
    assert "not valid" in fake.prompts()[1]
    usage = {key: item.usage[key] for key in ("inputTokens", "outputTokens", "calls")}
    assert usage == {"inputTokens": 22, "outputTokens": 14, "calls": 2}  # both calls count


def test_json_still_invalid_after_the_retry_fails(run_steps, llm):
    provider, fake = llm
    fake.default = Reply(text='{"tags": "not a list"}')
    schema = {"type": "object", "properties": {"tags": {"type": "array"}}}
    [item], _ = run_steps(
        [_step(provider, responseFormat="json", jsonSchema=schema)], {"title": "Lamp"}
    )
    assert item.status == "failed"
    assert "after one retry" in item.error and "tags" in item.error
    assert len(fake.requests) == 2


@pytest.mark.parametrize("depth", [65, 100_000])
def test_an_answer_nested_too_deep_is_invalid_and_fails_only_its_entity(run_steps, llm, depth):
    """A model's JSON nested deeper than a request body may be (the decoder and validators
    would exhaust the stack) is an invalid answer: asked again, then the entity fails with
    a message, and the rest of the chunk goes on."""
    provider, fake = llm
    deep = "[" * depth + "]" * depth
    fake.decide = lambda request: Reply(text=deep) if "Deep" in json.dumps(request) else None
    fake.default = Reply(text='{"tags": ["lamp"]}')
    items, entities = run_steps(
        [_step(provider, responseFormat="json", outputField="meta")],
        {"title": "Deep"},
        {"title": "Lamp"},
    )
    by_title = {e.data["title"]: (i, e) for i, e in zip(items, entities, strict=True)}
    deep_item, _ = by_title["Deep"]
    assert deep_item.status == "failed"
    assert "nested deeper than 64 levels" in deep_item.error
    assert "after one retry" in deep_item.error
    lamp_item, lamp = by_title["Lamp"]
    assert lamp_item.status == "completed" and lamp.data["meta"] == {"tags": ["lamp"]}


def test_the_deployment_default_provider_is_used_when_the_step_names_none(
    run_steps, openai_server, settings
):
    settings.AI_PROVIDER = "openai"
    settings.AI_MODEL = "house-model"
    step = {"type": "ai_generate", "config": {"prompt": "x", "outputField": "y"}}
    [item], _ = run_steps([step], {"title": "Lamp"})
    assert item.status == "completed", item.error
    assert openai_server.requests[0]["model"] == "house-model"


def test_connection_errors_are_retried_then_fail_the_entity(run_steps, settings, fresh_providers):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    settings.AI_MAX_ATTEMPTS = 2
    settings.AI_BACKOFF_S = 0.01
    [item], _ = run_steps([_step("openai")], {"title": "Lamp"})
    assert item.status == "failed"
    assert item.error.startswith("openai: connection error: ")
    assert item.error.endswith("(after 2 attempts)")
    assert (
        RunLog.objects.filter(run=item.run, level="warning", message__contains="retrying").count()
        == 1
    )


PRICED = {"input": 1000, "cachedInput": 1000, "output": 1000}  # USD per million tokens


def test_an_answer_invalid_after_its_retry_is_paid_for_in_the_runs_spending_and_usage(
    run_steps, llm, settings
):
    """Both calls answered and are billed: the entity fails, and its tokens count in the
    budget's spending, the run's usage and cost, and the item's usage, as an answer's do."""
    provider, fake = llm
    settings.AI_PRICES = {"m-priced": PRICED}
    fake.default = Reply(text="not json", input_tokens=1000, output_tokens=1000)
    step = _step(provider, model="m-priced", responseFormat="json")
    items, _ = run_steps([step], {"title": "Lamp"}, {"title": "Chair"}, budget={"maxTokens": 10**6})
    assert len(fake.requests) == 4
    for item in items:
        assert item.status == "failed" and "after one retry" in item.error, item.error
        assert (item.usage["calls"], item.usage["inputTokens"]) == (2, 2000)
        assert item.usage["steps"]["gen"]["calls"] == 2
    run = items[0].run
    run.refresh_from_db()
    assert run.spent_tokens == 4 * 2000 == run.input_tokens + run.output_tokens
    assert run.cost_usd == pytest.approx(4 * 2000 * 1000 / 10**6)


def test_a_corrective_call_that_fails_leaves_the_first_answer_counted(run_steps, llm, settings):
    provider, fake = llm
    settings.AI_MAX_ATTEMPTS = 1
    settings.AI_PRICES = {"m-priced": PRICED}
    fake.script = [Reply(text="not json", input_tokens=1000, output_tokens=1000)]
    fake.default = Reply(status=500, error="the model is on fire")
    step = _step(provider, model="m-priced", responseFormat="json")
    [item], _ = run_steps([step], {"title": "Lamp"}, budget={"maxTokens": 10**6})
    assert item.status == "failed" and item.error == f"{provider}: 500: the model is on fire"
    assert (item.usage["calls"], item.usage["inputTokens"]) == (1, 1000)
    run = item.run
    run.refresh_from_db()
    assert run.spent_tokens == 2000 and run.cost_usd == pytest.approx(2000 * 1000 / 10**6)
