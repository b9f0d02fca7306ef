"""A step's jsonSchema reaches the provider: OpenAI structured outputs, an Anthropic forced
tool; a server that honours it needs no corrective retry."""

import json

import pytest

from jobs.models import RunLog
from tests.servers import Reply
from workflows.providers.local import stand_in_value
from workflows.providers.structured import strict_qualifies

pytestmark = pytest.mark.django_db

CLOSED = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tags", "size"],
    "properties": {
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
        "size": {"type": ["string", "null"], "enum": ["S", "M", "L", None]},
    },
}


def _json_step(provider: str, schema: dict) -> dict:
    return {
        "id": "gen",
        "type": "ai_generate",
        "config": {
            "prompt": "Tag {{ entity.title }}",
            "outputField": "meta",
            "provider": provider,
            "responseFormat": "json",
            "jsonSchema": schema,
        },
    }


def sent_schema(request: dict) -> dict | None:
    """The schema a request carried, as either provider receives it."""
    if "tools" in request:
        return request["tools"][0]["input_schema"]
    response_format = request.get("response_format") or {}
    return (response_format.get("json_schema") or {}).get("schema")


def honour_schema(request: dict) -> Reply | None:
    """A server that answers in the shape it was sent; one sent none answers in prose."""
    schema = sent_schema(request)
    if schema is None:
        return None
    return Reply(text=json.dumps(stand_in_value(schema)))


@pytest.fixture(params=["openai", "anthropic"])
def llm(request):
    return request.param, request.getfixturevalue(f"{request.param}_server")


def test_openai_gets_the_schema_as_strict_structured_outputs(run_steps, openai_server):
    openai_server.default = Reply(text='{"tags": ["lamp"], "size": "M"}')
    [item], [entity] = run_steps([_json_step("openai", CLOSED)], {"title": "Lamp"})
    assert item.status == "completed", item.error
    assert entity.data["meta"] == {"tags": ["lamp"], "size": "M"}
    [request] = openai_server.requests
    assert request["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": CLOSED, "strict": True},
    }


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}},
        {  # a property left optional
            "type": "object",
            "additionalProperties": False,
            "required": ["a"],
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
        },
        {  # a keyword strict mode lacks
            "type": "object",
            "additionalProperties": False,
            "required": ["a"],
            "properties": {"a": {"type": "string", "minLength": 2}},
        },
        {  # a nested object left open
            "type": "object",
            "additionalProperties": False,
            "required": ["a"],
            "properties": {"a": {"type": "object", "properties": {}}},
        },
        {  # inside an array, under anyOf
            "type": "object",
            "additionalProperties": False,
            "required": ["a"],
            "properties": {
                "a": {"type": "array", "items": {"anyOf": [{"type": "object"}, {"type": "null"}]}}
            },
        },
    ],
)
def test_a_schema_strict_mode_cannot_take_is_sent_with_strict_false(
    run_steps, openai_server, schema
):
    assert not strict_qualifies(schema)
    run_steps([_json_step("openai", schema)], {"title": "Lamp"})
    [request, *_] = openai_server.requests
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["schema"] == schema
    assert request["response_format"]["json_schema"]["strict"] is False


def test_anthropic_gets_the_schema_as_a_forced_tool_and_its_input_is_the_answer(
    run_steps, anthropic_server
):
    anthropic_server.default = Reply(text='{"tags": ["lamp"], "size": "S"}')
    [item], [entity] = run_steps([_json_step("anthropic", CLOSED)], {"title": "Lamp"})
    assert item.status == "completed", item.error
    assert entity.data["meta"] == {"tags": ["lamp"], "size": "S"}
    [request] = anthropic_server.requests
    [tool] = request["tools"]
    assert tool["input_schema"] == CLOSED
    assert request["tool_choice"] == {"type": "tool", "name": tool["name"]}
    assert "JSON" not in request.get("system", "")  # the tool says it; no words needed


@pytest.mark.parametrize(
    ("schema", "answer"),
    [
        ({"type": "array", "items": {"type": "string"}}, ["a", "b"]),
        ({"type": "string", "enum": ["yes", "no"]}, "no"),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, 3),
    ],
)
def test_a_schema_without_an_object_root_is_wrapped_and_the_answer_unwrapped(
    run_steps, llm, schema, answer
):
    provider, fake = llm
    fake.default = Reply(text=json.dumps({"value": answer}))
    [item], [entity] = run_steps([_json_step(provider, schema)], {"title": "Lamp"})
    assert item.status == "completed", item.error
    assert entity.data["meta"] == answer
    sent = sent_schema(fake.requests[0])
    assert sent["type"] == "object" and sent["properties"]["value"] == schema
    assert sent["required"] == ["value"] and sent["additionalProperties"] is False


def test_a_server_that_honours_the_schema_needs_no_corrective_retry(run_steps, llm):
    provider, fake = llm
    fake.decide = honour_schema
    fake.default = Reply(text="Sure! The tags are: lamp")  # what it says without a schema
    [item], [entity] = run_steps([_json_step(provider, CLOSED)], {"title": "Lamp"})
    assert item.status == "completed", item.error
    assert entity.data["meta"] == stand_in_value(CLOSED)
    assert len(fake.requests) == 1
    assert not RunLog.objects.filter(run=item.run, level="warning").exists()


def test_without_structured_outputs_openai_gets_json_object_and_validation_still_holds(
    run_steps, openai_server, settings
):
    settings.AI_OPENAI_STRUCTURED_OUTPUTS = False
    openai_server.script = [Reply(text='{"tags": "lamp"}')]
    openai_server.default = Reply(text='{"tags": ["lamp"], "size": null}')
    [item], [entity] = run_steps([_json_step("openai", CLOSED)], {"title": "Lamp"})
    assert item.status == "completed", item.error
    assert entity.data["meta"] == {"tags": ["lamp"], "size": None}
    assert [r["response_format"] for r in openai_server.requests] == [{"type": "json_object"}] * 2
    assert "not valid" in openai_server.prompts()[1]


def test_json_without_a_schema_keeps_json_object_and_the_instruction(run_steps, llm):
    provider, fake = llm
    fake.default = Reply(text='{"any": 1}')
    step = _json_step(provider, {})
    del step["config"]["jsonSchema"]
    [item], [entity] = run_steps([step], {"title": "Lamp"})
    assert entity.data["meta"] == {"any": 1}, item.error
    [request] = fake.requests
    assert "tools" not in request
    if provider == "openai":
        assert request["response_format"] == {"type": "json_object"}
    else:
        assert "JSON" in request["system"][0]["text"]  # one cacheable block
