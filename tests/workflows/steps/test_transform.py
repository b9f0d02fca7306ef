import pytest

from tests.factories import make_entities, make_workflow

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


def _doubling(count: int) -> list[dict]:
    """`a` copied into itself `count` times: each copy doubles it."""
    operations = [{"op": "set", "field": "a", "value": {"v": 1}}]
    operations += [{"op": "copy", "from": "a", "to": f"a.k{i}"} for i in range(count)]
    return [{"id": "t", "type": "transform", "config": {"operations": operations}}]


def test_copies_that_double_the_working_copy_fail_the_entity_at_the_bound(run_steps, settings):
    """Thirty copies of a value into itself would build a billion nodes before the commit's
    size check: the step stops at the copy that takes it past what an entity may hold."""
    settings.ENTITY_MAX_DATA_BYTES = 64 * 1024
    [item], [entity] = run_steps(_doubling(40), {"title": "Lamp"})
    assert item.status == "failed"
    # 7 bytes doubling past 64 KiB: at operations[13], long before the fortieth copy.
    assert item.error == (
        "operations[13] (copy): the step's operations would add more than 65536 bytes to the "
        "entity (ENTITY_MAX_DATA_BYTES)."
    )
    assert entity.data == {"title": "Lamp"}


def test_the_test_endpoint_answers_a_doubling_transform_with_the_failure(api, product_type):
    workflow = make_workflow(product_type, _doubling(60))
    [entity_id] = make_entities(product_type, 1)
    response = api.post(f"/api/v1/workflows/{workflow.pk}/test", {"entityId": entity_id})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed" and "ENTITY_MAX_DATA_BYTES" in str(body), body


def test_copying_a_large_value_once_is_within_the_bound(run_steps, settings):
    settings.ENTITY_MAX_DATA_BYTES = 64 * 1024
    big = {"items": list(range(5000))}  # about 24 KB of JSON
    steps = [
        {
            "type": "transform",
            "config": {"operations": [{"op": "copy", "from": "big", "to": "copy"}]},
        }
    ]
    [item], [entity] = run_steps(steps, {"title": "Lamp", "big": big})
    assert item.status == "completed", item.error
    assert entity.data["copy"] == big


def test_its_output_lists_each_field_it_changed_once_and_none_it_left_as_it_was(api, product_type):
    """`trim` of a trimmed title, or a `set` to the value already there, changes nothing;
    a field set then slugified changed once."""
    operations = [
        {"op": "trim", "field": "title"},
        {"op": "set", "field": "seo.title", "value": "{{ entity.title }}"},
        {"op": "slugify", "field": "seo.title"},
        {"op": "set", "field": "price", "value": 3},
        {"op": "set", "field": "flag", "value": True},
    ]
    workflow = make_workflow(
        product_type, [{"type": "transform", "config": {"operations": operations}}]
    )
    [entity_id] = make_entities(product_type, 1)
    api.patch(f"/api/v1/entities/{entity_id}", {"data": {"title": "Item 0", "price": 3, "flag": 1}})
    response = api.post(f"/api/v1/workflows/{workflow.pk}/test", {"entityId": entity_id})
    assert response.status_code == 200, response.json()
    [step] = response.json()["steps"]
    assert step["output"]["changed"] == ["seo.title", "flag"]  # `1` to `true` is a change
