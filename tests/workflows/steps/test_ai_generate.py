import json

import pytest

from entities.models import Entity
from jobs.models import Run, RunItem
from tests.factories import make_entities, make_workflow, run_inline, start_run
from tests.servers import Reply
from workflows.models import Step, WorkflowVersion
from workflows.providers import GenerationRequest
from workflows.providers.local import STAND_IN
from workflows.steps.ai_generate import answer_of

pytestmark = pytest.mark.django_db


def test_local_provider_writes_an_honest_stand_in_and_records_usage(run_steps):
    step = {
        "type": "ai_generate",
        "config": {"prompt": "Describe {{ entity.title }}", "outputField": "seo.description"},
    }
    [item], [entity] = run_steps([step], {"title": "Lamp"})
    assert item.status == "completed", item.error
    assert entity.data["seo"]["description"].startswith(STAND_IN)
    assert "Describe Lamp" in entity.data["seo"]["description"]
    assert item.usage["inputTokens"] > 0 and item.usage["outputTokens"] > 0
    run = item.run
    run.refresh_from_db()
    assert run.input_tokens == item.usage["inputTokens"]


def test_json_answer_is_parsed_and_meets_the_schema(run_steps):
    schema = {
        "type": "object",
        "required": ["tags"],
        "properties": {"tags": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
    }
    step = {
        "type": "ai_generate",
        "config": {
            "prompt": "Tags for {{ entity.title }}",
            "outputField": "meta",
            "responseFormat": "json",
            "jsonSchema": schema,
        },
    }
    [item], [entity] = run_steps([step], {"title": "Lamp"})
    assert item.status == "completed", item.error
    assert isinstance(entity.data["meta"]["tags"], list)


def test_overwrite_false_keeps_an_existing_value(run_steps):
    step = {
        "type": "ai_generate",
        "config": {"prompt": "x", "outputField": "title", "overwrite": False},
    }
    [item], [entity] = run_steps([step], {"title": "Keep me"})
    assert entity.data["title"] == "Keep me"
    assert item.usage == {}


def test_a_template_error_at_run_time_fails_the_entity(run_steps):
    step = {
        "type": "ai_generate",
        "config": {"prompt": "{{ entity.title.upper(1, 2, 3) }}", "outputField": "x"},
    }
    [item], _ = run_steps([step], {"title": "Lamp"})
    assert item.status == "failed" and "Template failed" in item.error


def test_templates_cannot_reach_python_internals(run_steps):
    step = {
        "type": "ai_generate",
        "config": {
            "prompt": "{{ entity.__class__.__mro__[1].__subclasses__() }}",
            "outputField": "x",
        },
    }
    [item], [entity] = run_steps([step], {"title": "Lamp"})
    assert item.status == "failed"
    assert item.error.startswith("Template")
    assert "x" not in entity.data


def test_a_stored_json_schema_whose_checks_multiply_fails_the_entity_at_once(product_type):
    """A `jsonSchema` saved before schemas were measured is measured when an answer is
    checked against it: the entity fails naming it, instead of a worker checking for hours."""
    config = {
        "prompt": "Describe {{ entity.title }}",
        "outputField": "facts",
        "responseFormat": "json",
        "jsonSchema": {"type": "object"},
    }
    workflow = make_workflow(product_type, [{"id": "gen", "type": "ai_generate", "config": config}])
    defs = {f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(25)}
    defs["d25"] = {"type": "object"}
    stored = {**config, "jsonSchema": {"$defs": defs, "$ref": "#/$defs/d0"}}
    WorkflowVersion.objects.filter(workflow=workflow).update(
        steps=[{"id": "gen", "type": "ai_generate", "config": stored}]
    )
    Step.objects.filter(workflow=workflow).update(config=stored)
    run = start_run(workflow, make_entities(product_type, 1))
    run_inline(run.pk)
    [item] = RunItem.objects.filter(run=run)
    assert item.status == "failed"
    assert item.error.startswith("The step's jsonSchema cannot be used: Checking one"), item.error
    assert not item.usage  # no model was called: no answer could have been checked


@pytest.mark.parametrize("schema", [None, {"type": "object"}], ids=["json", "json-schema"])
@pytest.mark.parametrize(
    "answer", ['{"n": NaN}', '{"n": -Infinity}', '{"n": 1e400}'], ids=["NaN", "-Infinity", "1e400"]
)
def test_a_json_answer_holding_nan_or_infinity_is_invalid_and_fails_its_entity_alone(
    openai_server, product_type, answer, schema
):
    """Python's decoder takes `NaN`, `Infinity` and an overflowing `1e400` as floats, which
    PostgreSQL's jsonb refuses: taken as valid, such an answer failed the chunk's commit
    (DataError), every delivery of it, calling every entity's model again each time, then
    failed all its entities (run inline, the run was left running). It is an invalid
    answer: asked again once, then that entity alone fails."""
    openai_server.decide = lambda request: Reply(
        text=answer if "Item 0" in json.dumps(request) else '{"n": 1.5e308}'
    )
    config = {
        "prompt": "Facts on {{ entity.title }}",
        "outputField": "facts",
        "responseFormat": "json",
        "provider": "openai",
    }
    step = {"id": "gen", "type": "ai_generate", "config": {**config, "jsonSchema": schema}}
    if schema is None:
        del step["config"]["jsonSchema"]
    ids = make_entities(product_type, 2)
    run = start_run(make_workflow(product_type, [step]), ids)
    run_inline(run.pk)
    run = Run.objects.get(pk=run.pk)
    assert run.status == "failed" and (run.completed, run.failed) == (1, 1)
    bad, good = (RunItem.objects.get(run=run, entity_id=pk) for pk in ids)
    assert bad.status == "failed" and "after one retry: not JSON" in bad.error, bad.error
    assert good.status == "completed", good.error
    assert len(openai_server.requests) == 3  # the bad answer asked again once, no redelivery
    assert float(Entity.objects.get(pk=ids[1]).data["facts"]["n"]) == 1.5e308


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("NaN", "not JSON (NaN is not a JSON number)"),
        ('[1, {"a": Infinity}]', "not JSON (Infinity is not a JSON number)"),
        ('{"a": -1e400}', "not JSON (-1e400 is too large a number (it would be infinity))"),
    ],
)
def test_an_answer_the_database_cannot_store_is_invalid_wherever_it_comes_from(text, problem):
    """`answer_of` checks the answers of live calls, of provider batches and of an
    experiment's judges alike."""
    request = GenerationRequest(prompt="p", model="", json_mode=True)
    assert answer_of(text, request) == (None, problem)
    assert answer_of('{"a": 1e308, "b": 10000000000000000000000}', request)[1] is None
