import pytest

pytestmark = pytest.mark.django_db


def test_operations_apply_in_order_and_commit_when_the_entity_finishes(run_steps):
    steps = [
        {
            "type": "transform",
            "config": {
                "operations": [
                    {"op": "trim", "field": "title"},
                    {"op": "set", "field": "seo.title", "value": "{{ entity.title }} | Shop"},
                    {"op": "slugify", "field": "seo.title"},
                    {"op": "copy", "from": "price", "to": "listPrice"},
                    {"op": "rename", "from": "brand", "to": "maker"},
                    {"op": "set", "field": "tags", "value": ["a", 1]},
                    {"op": "uppercase", "field": "maker"},
                    {"op": "remove", "field": "internal"},
                    {"op": "lowercase", "field": "missing"},
                ]
            },
        }
    ]
    [item], [entity] = run_steps(
        steps, {"title": "  Lamp ", "price": 3, "brand": "Lumo", "internal": "x"}
    )
    assert item.status == "completed", item.error
    assert entity.data == {
        "title": "Lamp",
        "price": 3,
        "listPrice": 3,
        "maker": "LUMO",
        "seo": {"title": "lamp-shop"},
        "tags": ["a", 1],
    }
    assert entity.version == 2


def test_copy_of_a_missing_field_fails_and_discards_changes(run_steps):
    steps = [
        {
            "type": "transform",
            "config": {
                "operations": [
                    {"op": "set", "field": "title", "value": "changed"},
                    {"op": "copy", "from": "nope", "to": "x"},
                ]
            },
        }
    ]
    [item], [entity] = run_steps(steps, {"title": "Lamp"})
    assert item.status == "failed"
    assert item.step_id == "transform_1"
    assert "'nope' does not exist" in item.error
    assert entity.data == {"title": "Lamp"} and entity.version == 1


def test_text_operation_on_a_number_fails(run_steps):
    steps = [{"type": "transform", "config": {"operations": [{"op": "trim", "field": "price"}]}}]
    [item], _ = run_steps(steps, {"title": "Lamp", "price": 3})
    assert item.status == "failed" and "is a int, not a string" in item.error


def test_a_result_breaking_the_schema_is_not_committed(run_steps):
    steps = [{"type": "transform", "config": {"operations": [{"op": "remove", "field": "title"}]}}]
    [item], [entity] = run_steps(steps, {"title": "Lamp"})
    assert item.status == "failed"
    assert "'title' is a required property" in item.error
    assert entity.data == {"title": "Lamp"}
