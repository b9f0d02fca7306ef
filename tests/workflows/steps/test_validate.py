from unittest import mock

import pytest

pytestmark = pytest.mark.django_db


def test_passing_rules_go_on(run_steps):
    steps = [
        {
            "type": "validate",
            "config": {
                "rules": [
                    {
                        "field": "title",
                        "required": True,
                        "type": "string",
                        "minLength": 2,
                        "maxLength": 10,
                        "pattern": "^L",
                    },
                    {"field": "price", "type": "number", "minimum": 0, "maximum": 10},
                    {"field": "color", "enum": ["red", "blue"]},
                ]
            },
        }
    ]
    [item], _ = run_steps(steps, {"title": "Lamp", "price": 3})
    assert item.status == "completed", item.error


def test_every_broken_rule_is_named(run_steps):
    steps = [
        {
            "type": "validate",
            "config": {
                "rules": [
                    {"field": "description", "required": True},
                    {"field": "title", "maxLength": 2, "pattern": "^X"},
                    {"field": "price", "type": "integer", "maximum": 1},
                    {"field": "color", "enum": ["red"]},
                ]
            },
        }
    ]
    [item], _ = run_steps(steps, {"title": "Lamp", "price": 3.5, "color": "green"})
    assert item.status == "failed"
    for expected in [
        "description: is required",
        "title: must have at most 2",
        "title: must match '^X'",
        "price: must be of type integer",
        "price: must be at most 1",
        "color: must be one of ['red']",
    ]:
        assert expected in item.error


def test_entity_type_schema_is_checked_unless_disabled(run_steps):
    make_invalid = {
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "price", "value": "free"}]},
    }
    [item], _ = run_steps([make_invalid, {"type": "validate", "config": {}}], {"title": "Lamp"})
    assert item.status == "failed"
    assert "data.price: 'free' is not of type 'number'" in item.error
    [item], _ = run_steps(
        [make_invalid, {"type": "validate", "config": {"useEntityTypeSchema": False}}],
        {"title": "Lamp"},
    )
    assert item.step_id == "validate_1"
    assert "Cannot commit the entity" in item.error  # the commit still refuses bad data


def test_the_schema_validator_is_built_once_per_chunk_not_per_entity(run_steps):
    from workflows.steps import validate

    built = []
    real = validate.data_validator
    with mock.patch.object(validate, "data_validator", lambda s: built.append(s) or real(s)):
        items, _ = run_steps(
            [{"type": "validate", "config": {}}], *({"title": f"t{i}"} for i in range(5))
        )
    assert [item.status for item in items] == ["completed"] * 5
    assert len(built) == 1
