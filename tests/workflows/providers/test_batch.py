"""Batch mode through the real SDKs against the batch endpoints of the loopback stand-ins."""

import math
import uuid

import pytest

from config.metrics import MODEL_BATCH_CALLS, MODEL_CALLS, MODEL_TOKENS
from tests.servers import Reply
from workflows.providers import provider_get
from workflows.providers.base import BatchCallFailed, BatchItem, GenerationRequest
from workflows.providers.network import OpenAIProvider
from workflows.steps.runtime import StepError

# An array schema is wrapped in an object for the provider and unwrapped from its answer.
SCHEMA = {"type": "array", "items": {"type": "string"}}
REQUEST = GenerationRequest(
    prompt="Describe Lamp",
    model="m-1",
    system="Be brief",
    temperature=0.2,
    max_tokens=50,
    json_schema=SCHEMA,
    json_mode=True,
)


@pytest.fixture(params=["openai", "anthropic"])
def llm(request):
    """(provider, fake) for each network provider."""
    fake = request.getfixturevalue(f"{request.param}_server")
    return provider_get(request.param), fake


def _items(*prompts: str, **options) -> list[BatchItem]:
    return [
        BatchItem(f"w{n}", GenerationRequest(prompt=p, model="m-1", **options))
        for n, p in enumerate(prompts)
    ]


def _key() -> str:
    return f"run-1:chunk-{uuid.uuid4().hex}"  # the cache outlives a test: each its own key


def _sent(provider, batch) -> list[dict]:
    """Each request of a batch as the provider received it (body or params)."""
    field = "body" if provider.name == "openai" else "params"
    return [request[field] for request in batch.requests]


def test_a_batch_runs_and_its_answers_come_back_by_custom_id_with_usage(llm):
    provider, fake = llm
    fake.batches.delay = math.inf
    fake.default = Reply(input_tokens=11, cached_tokens=4, output_tokens=7)
    fake.decide = lambda request: Reply(
        text=f"About {request['messages'][-1]['content']}", input_tokens=11, cached_tokens=4
    )
    batch_id = provider.batch_submit(_items("Lamp", "Chair"), idempotency_key=_key())

    status = provider.batch_status(batch_id)
    assert status.state == "in_progress"
    assert status.counts["total"] == 2 and status.counts["completed"] == 0
    assert provider.batch_results(batch_id) == []

    fake.batches.finish(batch_id)
    status = provider.batch_status(batch_id)
    assert (status.state, status.counts) == ("ended", {"total": 2, "completed": 2, "failed": 0})
    results = {result.custom_id: result for result in provider.batch_results(batch_id)}
    assert {key: result.generation.text for key, result in results.items()} == {
        "w0": "About Lamp",
        "w1": "About Chair",
    }
    usage = {"inputTokens": 11, "cachedInputTokens": 4, "outputTokens": 7}
    assert all(result.generation.usage == usage for result in results.values())
    assert all(result.generation.model == "m-1" and not result.error for result in results.values())
    assert fake.requests == []  # nothing went to the live endpoint


def test_each_batched_request_carries_exactly_the_sync_body(llm):
    provider, fake = llm
    provider.generate(REQUEST)
    [sync] = fake.requests
    provider.batch_submit([BatchItem("w0", REQUEST)], idempotency_key=_key())
    [batch] = fake.batches.submissions
    assert _sent(provider, batch) == [sync]
    if provider.name == "openai":
        [line] = batch.requests
        assert (line["custom_id"], line["method"], line["url"]) == (
            "w0",
            "POST",
            "/v1/chat/completions",
        )
        assert sync["response_format"]["type"] == "json_schema"
        assert sync["response_format"]["json_schema"]["schema"]["properties"] == {"value": SCHEMA}
        assert sync["messages"][0]["role"] == "system"
        assert (sync["max_tokens"], sync["temperature"]) == (50, 0.2)
    else:
        assert batch.requests[0]["custom_id"] == "w0"
        assert sync["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert sync["tool_choice"] == {"type": "tool", "name": "answer"}
        assert (sync["max_tokens"], sync["temperature"]) == (50, 0.2)


@pytest.mark.parametrize("max_tokens", [None, 50])
def test_a_batched_request_is_reserved_at_the_most_answer_it_asks_for(llm, max_tokens):
    """A budget reserves a batched request before it is sent: its answer at the bound the
    request carries as sent. Anthropic's requests always carry one (the step's `maxTokens`,
    else 1,024), which a reservation at 300 tokens understated threefold; OpenAI's carry
    none without `maxTokens`, reserved at ESTIMATE_OUTPUT_TOKENS."""
    from workflows.pricing import ESTIMATE_OUTPUT_TOKENS, request_estimate

    provider, fake = llm
    request = GenerationRequest(prompt="Describe Lamp", model="m-1", max_tokens=max_tokens)
    provider.batch_submit([BatchItem("w0", request)], idempotency_key=_key())
    [sent] = _sent(provider, fake.batches.submissions[0])
    reserved = request_estimate(provider, request, batch=True)["outputTokens"]
    assert reserved == sent.get("max_tokens", ESTIMATE_OUTPUT_TOKENS)
    if max_tokens is None and provider.name == "anthropic":
        assert reserved == 1024


def test_openai_batch_and_sync_bodies_are_one_for_every_request_shape(openai_server, settings):
    provider = provider_get("openai")
    shapes = [
        GenerationRequest(prompt="plain", model=""),
        GenerationRequest(prompt="json", model="m", json_mode=True),
        GenerationRequest(
            prompt="object", model="m", json_mode=True, json_schema={"type": "object"}
        ),
        REQUEST,
    ]
    for request in shapes:
        provider.generate(request)
    settings.AI_OPENAI_STRUCTURED_OUTPUTS = False
    provider.generate(REQUEST)
    provider.batch_submit([BatchItem("off", REQUEST)], idempotency_key=_key())
    settings.AI_OPENAI_STRUCTURED_OUTPUTS = True
    items = [BatchItem(f"w{n}", request) for n, request in enumerate(shapes)]
    provider.batch_submit(items, idempotency_key=_key())
    off, on = openai_server.batches.submissions
    assert _sent(provider, on) + _sent(provider, off) == openai_server.requests
    assert openai_server.requests[0]["model"] == OpenAIProvider.default_model


def test_a_schema_answer_is_unwrapped_as_in_sync_mode_when_the_requests_are_given(llm):
    provider, fake = llm
    fake.default = Reply(text='{"value": ["a", "b"]}')
    batch_id = provider.batch_submit([BatchItem("w0", REQUEST)], idempotency_key=_key())
    [result] = provider.batch_results(batch_id, requests={"w0": REQUEST})
    assert result.generation.text == '["a", "b"]'
    assert provider.generate(REQUEST).text == result.generation.text


def test_request_errors_and_expired_requests_come_back_with_the_providers_message(llm):
    provider, fake = llm
    answers = {"bad": Reply(status=400, error="prompt too long"), "busy": Reply(status=500)}
    fake.decide = lambda request: answers.get(request["messages"][-1]["content"])
    fake.batches.expire = {"w2"}
    batch_id = provider.batch_submit(_items("bad", "busy", "late", "fine"), idempotency_key=_key())
    status = provider.batch_status(batch_id)
    assert status.state == ("expired" if provider.name == "openai" else "ended")
    assert status.counts == {"total": 4, "completed": 1, "failed": 3}
    results = {result.custom_id: result for result in provider.batch_results(batch_id)}
    assert results["w3"].generation.text == "A generated answer."
    errors = {key: (r.error, r.retryable) for key, r in results.items() if key != "w3"}
    if provider.name == "openai":
        assert errors == {
            "w0": ("openai: 400: prompt too long", False),
            "w1": ("openai: 500: Something went wrong", True),
            "w2": (
                "openai: expired: This request could not be executed before the completion "
                "window expired.",
                True,
            ),
        }
    else:
        assert errors == {
            "w0": ("anthropic: invalid_request_error: prompt too long", False),
            "w1": ("anthropic: api_error: Something went wrong", True),
            "w2": ("anthropic: expired: the batch ended before the request ran", True),
        }


def test_openai_a_rejected_batch_fails_with_the_providers_reason(openai_server):
    provider = provider_get("openai")
    openai_server.batches.reject = "The model m-1 does not support batches."
    batch_id = provider.batch_submit(_items("Lamp"), idempotency_key=_key())
    status = provider.batch_status(batch_id)
    assert status.state == "failed"
    assert status.error == "openai: The model m-1 does not support batches."
    assert provider.batch_results(batch_id) == []


def test_anthropic_a_rejected_batch_is_refused_at_submit_with_the_providers_reason(
    anthropic_server,
):
    anthropic_server.batches.reject = "requests: too many"
    with pytest.raises(StepError) as refused:
        provider_get("anthropic").batch_submit(_items("Lamp"), idempotency_key=_key())
    assert refused.value.message == ("anthropic: 400: requests: too many (messages.batches.create)")
    assert anthropic_server.batches.submissions == []


def test_cancel_tells_the_provider_and_the_unrun_requests_are_absent(llm):
    provider, fake = llm
    fake.batches.delay = math.inf
    batch_id = provider.batch_submit(_items("Lamp", "Chair"), idempotency_key=_key())
    provider.batch_cancel(batch_id)
    assert fake.batches.cancels == [batch_id]
    assert provider.batch_status(batch_id).state == "cancelled"
    assert provider.batch_results(batch_id) == []
    provider.batch_cancel(batch_id)  # already ended: nothing more to ask
    assert fake.batches.cancels == [batch_id]


def test_cancelling_an_ended_batch_is_harmless(llm):
    provider, fake = llm
    batch_id = provider.batch_submit(_items("Lamp"), idempotency_key=_key())
    assert provider.batch_status(batch_id).state == "ended"
    provider.batch_cancel(batch_id)
    assert fake.batches.cancels == []
    [result] = provider.batch_results(batch_id)
    assert result.generation.text == "A generated answer."


def test_a_resubmission_with_the_same_key_does_not_create_a_second_batch(llm):
    provider, fake = llm
    key = _key()
    first = provider.batch_submit(_items("Lamp"), idempotency_key=key)
    # A worker that crashed after submitting comes back as a new process.
    again = type(provider)().batch_submit(_items("Lamp"), idempotency_key=key)
    other = provider.batch_submit(_items("Lamp"), idempotency_key=_key())
    assert again == first and other != first
    assert [batch.id for batch in fake.batches.submissions] == [first, other]


def test_openai_finds_the_batch_of_a_key_on_a_later_page(openai_server, monkeypatch):
    provider = provider_get("openai")
    key = _key()
    first = provider.batch_submit(_items("Lamp"), idempotency_key=key)
    for _ in range(3):
        provider.batch_submit(_items("Lamp"), idempotency_key=_key())
    real_list = provider.client.batches.list
    monkeypatch.setattr(provider.client.batches, "list", lambda limit: real_list(limit=2))
    assert provider.batch_submit(_items("Lamp"), idempotency_key=key) == first
    assert len(openai_server.batches.submissions) == 4


def test_a_provider_http_error_is_a_step_error_naming_the_provider(llm):
    provider, fake = llm
    fake.batches.script = [Reply(status=500, error="the batch service is down")]
    with pytest.raises(StepError) as refused:
        provider.batch_submit(_items("Lamp"), idempotency_key=_key())
    assert refused.value.message.startswith(f"{provider.name}: 500: the batch service is down (")
    assert fake.batches.submissions == []
    batch_id = provider.batch_submit(_items("Lamp"), idempotency_key=_key())
    fake.batches.script = [Reply(status=404, error="no such batch")]
    with pytest.raises(StepError, match=f"^{provider.name}: 404: no such batch"):
        provider.batch_status(batch_id)


@pytest.mark.parametrize("call", ["batch_status", "batch_results"])
def test_a_batch_call_answered_a_few_bytes_at_a_time_is_a_retryable_timeout(llm, settings, call):
    """Each read came within the SDK's timeout, the whole answer only after many: a poll
    (and the `waits` worker running it) was held for as long as the server liked. A round
    trip ends at AI_BATCH_CALL_TIMEOUT_S, and the next poll asks again."""
    provider, fake = llm
    batch_id = provider.batch_submit(_items("Lamp", "Chair"), idempotency_key=_key())
    fake.batches.finish(batch_id)
    settings.AI_BATCH_CALL_TIMEOUT_S = 1
    fake.batches.drip = 0.2  # answers of hundreds of bytes: many seconds each
    with pytest.raises(BatchCallFailed) as failed:
        getattr(provider, call)(batch_id)
    assert failed.value.retryable
    message = failed.value.message
    assert message.startswith(f"{provider.name}: timeout: no answer within 1s"), message
    fake.batches.drip = 0
    assert len(provider.batch_results(batch_id)) == 2


def test_answers_count_as_model_calls_and_tokens_when_their_results_are_read(llm):
    provider, fake = llm
    fake.default = Reply(input_tokens=11, cached_tokens=4, output_tokens=7)
    calls = MODEL_CALLS.labels(provider.name, "other", "ok")
    cached = MODEL_TOKENS.labels(provider.name, "other", "cached_input")
    submits = MODEL_BATCH_CALLS.labels(
        provider.name,
        "batches.create" if provider.name == "openai" else "messages.batches.create",
        "ok",
    )
    before = calls._value.get(), cached._value.get(), submits._value.get()
    batch_id = provider.batch_submit(_items("Lamp", "Chair"), idempotency_key=_key())
    provider.batch_results(batch_id)
    after = calls._value.get(), cached._value.get(), submits._value.get()
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 8, 1]


@pytest.mark.parametrize(
    "odd",
    [
        {"choices": "not a list"},
        {"choices": [{"message": {"content": ["a", "list"]}}]},
        {"choices": [{"message": {"content": "Fine."}}], "usage": {"prompt_tokens": "12"}},
    ],
    ids=["choices-not-a-list", "content-a-list", "count-a-string"],
)
def test_openai_an_unreadable_answer_is_a_retryable_error_and_the_others_still_come(
    openai_server, odd
):
    """Answers are read as JSON, not validated into the SDK's models first: one whose
    fields are not of their types fails alone, and the batch's other answers still come."""
    provider, real_body = provider_get("openai"), openai_server.body

    def body(reply, request):
        if request["messages"][-1]["content"] == "odd":
            return odd
        return real_body(reply, request)

    openai_server.body = body
    batch_id = provider.batch_submit(_items("odd", "Lamp"), idempotency_key=_key())
    odd, lamp = sorted(provider.batch_results(batch_id), key=lambda result: result.custom_id)
    assert odd.error.startswith("openai: 200: an answer not in the chat completion shape")
    assert odd.retryable and odd.generation is None
    assert lamp.generation.text == "A generated answer."


def test_anthropic_an_unreadable_answer_is_a_retryable_error_and_the_others_still_come(
    anthropic_server,
):
    provider, real_body = provider_get("anthropic"), anthropic_server.body

    def body(reply, request):
        answer = real_body(reply, request)
        if request["messages"][-1]["content"] == "odd":
            answer["usage"]["output_tokens"] = "many"
        return answer

    anthropic_server.body = body
    batch_id = provider.batch_submit(_items("odd", "Lamp"), idempotency_key=_key())
    odd, lamp = sorted(provider.batch_results(batch_id), key=lambda result: result.custom_id)
    assert odd.error.startswith("anthropic: 200: an answer not in the message shape"), odd.error
    assert odd.retryable and odd.generation is None
    assert lamp.generation.text == "A generated answer."


GARBAGE = [
    "not JSON at all",
    '{"custom_id": "w1", "response": {"status_code": 200, "bo',  # cut short
    '{"id": "batch_req_9"}',  # names no request
    "[1, 2]",
    "null",
    '{"custom_id": ["w0"]}',
    '{"custom_id": "w0", "response": "odd", "result": "odd"}',  # ours, in no known shape
]


def test_unreadable_result_lines_are_left_out_and_the_others_still_come(llm):
    """A results file with lines that are not JSON, are cut short or name no request: they
    are skipped (their requests count as missing, and are sent again), never the end of
    the whole batch's results."""
    provider, fake = llm
    fake.batches.garbage = GARBAGE
    batch_id = provider.batch_submit(_items("Lamp", "Chair"), idempotency_key=_key())
    results = provider.batch_results(batch_id)
    answers = {r.custom_id: r.generation.text for r in results if r.generation is not None}
    assert answers == {"w0": "A generated answer.", "w1": "A generated answer."}
    errors = [r for r in results if r.generation is None]
    assert all(r.custom_id == "w0" and r.retryable for r in errors), errors
