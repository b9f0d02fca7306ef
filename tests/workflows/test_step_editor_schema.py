"""The step editor's schema and what it posts: made from each type's own config schema, a
transform's operations one object with an `op` select, empty optional fields dropped."""

import pytest

from workflows.editor import (
    EditorInputError,
    editor_clean,
    editor_schema,
    editor_types,
    triggers_editor_clean,
    triggers_editor_schema,
)
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


def test_a_json_schema_option_is_a_list_of_fields_or_json_text_and_read_back():
    schema = registry.get("ai_generate").config_schema
    field = editor_schema(schema)["properties"]["jsonSchema"]
    fields_form, as_text = field["oneOf"]
    assert fields_form["properties"]["fields"]["items"]["properties"]["type"]["enum"][0] == "string"
    assert as_text == {"type": "string", "widget": "textarea", "title": "JSON Schema as JSON"}
    page = editor_types()["ai_generate"]
    assert page["jsonSchema"] == ["jsonSchema"] and page["jsonText"] == []
    assert page["example"] == registry.get("ai_generate").example
    # JSON text the page could not read is read on the server, or refused with its name.
    config = {"prompt": "Hi", "outputField": "x", "jsonSchema": {"type": "object"}}
    shown = {**config, "jsonSchema": '{\n  "type": "object"\n}'}
    assert editor_clean(schema, shown) == config
    assert "jsonSchema" not in editor_clean(schema, {**shown, "jsonSchema": " "})
    with pytest.raises(EditorInputError, match=r"jsonSchema: Is not valid JSON\."):
        editor_clean(schema, {**shown, "jsonSchema": "{nope"})


def test_the_triggers_editor_drops_what_was_left_empty():
    posted = [
        {
            "on": "entity.created",
            "fields": [],
            "cron": "",
            "timezone": "",
            "filter": {"status": ""},
        },
        {"on": "schedule", "fields": [], "cron": "0 3 * * *", "filter": {"status": "draft"}},
    ]
    assert triggers_editor_clean(posted) == [
        {"on": "entity.created"},
        {"on": "schedule", "cron": "0 3 * * *", "filter": {"status": "draft"}},
    ]
    assert triggers_editor_schema()["items"]["properties"]["on"]["enum"][0] == "entity.created"


def test_each_option_is_labelled_in_words():
    properties = editor_schema(registry.get("ai_generate").config_schema)["properties"]
    assert properties["outputField"]["title"] == "Output field"
    assert properties["jsonSchema"]["title"] == "JSON schema"
    assert properties["maxTokens"]["title"] == "Max tokens"


def test_each_choice_among_kinds_is_named_and_help_shows_no_markdown():
    condition = editor_schema(registry.get("condition").config_schema)
    predicate = condition["$defs"]["Predicate"]["oneOf"]
    assert [choice["title"] for choice in predicate] == ["Comparison", "All of", "Any of"]
    to = editor_schema(registry.get("notify").config_schema)["properties"]["to"]
    assert [choice["title"] for choice in to["oneOf"]] == ["Text", "A list"]
    texts = [
        text for step_type in registry for text in _texts(editor_schema(step_type.config_schema))
    ]
    assert texts and not [text for text in texts if "`" in text]
    fmt = editor_schema(registry.get("ai_generate").config_schema)["properties"]["responseFormat"]
    assert fmt["help_text"].startswith("“text” writes the answer as is")


def _texts(node):
    """Every help text and description in an editor schema."""
    if isinstance(node, list):
        return [text for item in node for text in _texts(item)]
    if not isinstance(node, dict):
        return []
    found = [node[key] for key in ("help_text", "description") if isinstance(node.get(key), str)]
    return found + [text for value in node.values() for text in _texts(value)]
