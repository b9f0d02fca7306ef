"""The step editor's schema and what it posts: made from each type's own config schema, a
transform's operations one object with an `op` select, empty optional fields dropped."""

import pytest

from workflows.editor import editor_clean, editor_schema
from workflows.steps import registry


@pytest.mark.parametrize("step_type", list(registry), ids=lambda step_type: step_type.type)
def test_every_type_gets_an_editor_schema_that_keeps_its_example(step_type):
    schema = editor_schema(step_type.config_schema)
    assert schema["type"] == "object" and "x-discriminator" not in str(schema)
    assert editor_clean(step_type.config_schema, step_type.example) == step_type.example


def test_operations_are_one_object_with_an_op_select_and_templates_are_text_areas():
    transform = editor_schema(registry.get("transform").config_schema)
    item = transform["properties"]["operations"]["items"]
    assert item["properties"]["op"]["enum"] == [
        "set",
        "copy",
        "rename",
        "remove",
        "lowercase",
        "uppercase",
        "trim",
        "slugify",
    ]
    assert item["properties"]["from"]["help_text"].startswith("For copy, rename:")
    prompt = editor_schema(registry.get("ai_generate").config_schema)["properties"]["prompt"]
    assert prompt["widget"] == "textarea" and "{{ entity.<field> }}" in prompt["help_text"]
    assert prompt["required"] is True


def test_what_the_editor_posts_keeps_only_the_chosen_operation_s_fields():
    schema = registry.get("transform").config_schema
    posted = {"operations": [{"op": "trim", "field": "title", "from": "", "to": "", "value": ""}]}
    assert editor_clean(schema, posted) == {"operations": [{"op": "trim", "field": "title"}]}
    kept = {"operations": [{"op": "set", "field": "slug", "value": "", "from": ""}]}
    assert editor_clean(schema, kept) == {
        "operations": [{"op": "set", "field": "slug", "value": ""}]
    }
    ai = registry.get("ai_generate").config_schema
    assert editor_clean(ai, {"prompt": "Hi", "outputField": "x", "system": "", "model": None}) == {
        "prompt": "Hi",
        "outputField": "x",
    }
