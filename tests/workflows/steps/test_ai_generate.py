import pytest

from jobs.models import RunItem
from tests.factories import make_entities, make_workflow, run_inline, start_run
from workflows.models import Step, WorkflowVersion
from workflows.providers.local import STAND_IN

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
