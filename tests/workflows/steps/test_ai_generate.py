import pytest

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
