from unittest import mock

import pytest

from entities import services as entity_services
from tests.conftest import Api
from tests.factories import make_key, make_workflow, run_inline, start_run

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
    assert "data.price: must be of type number" in item.error
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


def test_run_items_and_job_logs_name_what_is_wrong_without_the_entity_data(db):
    """A run's items and a job's log are read with `jobs.view_run`/`jobs.view_job` alone;
    entity data takes `entities.view_entity`: the schema's messages never show a value."""
    entity_type = entity_services.entity_type_create(name="people", description="", schema=None)
    data = {"ssn": "123-45-6789", "code": "secret-code", "tags": ["SECRET-TAG"] * 2}
    [entity_id] = entity_services.entities_bulk_create(
        entity_type=entity_type, items=[{"data": data}]
    )
    schema = {
        "type": "object",
        "properties": {
            "ssn": {"type": "integer"},
            "code": {"pattern": "^[A-Z]+$"},
            "tags": {"uniqueItems": True, "items": {"enum": ["a", "b"]}},
        },
    }
    entity_services.entity_type_update(entity_type=entity_type, schema=schema)
    workflow = make_workflow(entity_type, [{"id": "check", "type": "validate", "config": {}}])
    run = start_run(workflow, [entity_id])
    run_inline(run.pk)
    api = Api(make_key(perms=["jobs.view_run", "jobs.view_job"]))
    items = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}/items")
    logs = api.get(f"/api/v1/jobs/{run.job.pk}/logs")
    assert items.status_code == logs.status_code == 200
    for page in (items.content.decode(), logs.content.decode()):
        assert "data.ssn: must be of type integer" in page
        assert "data.code: must match '^[A-Z]+$'" in page
        assert "data.tags: has non-unique elements (items 0 and 1 are equal)" in page
        assert "data.tags[0]: must be one of ['a', 'b']" in page
        for value in ("123-45-6789", "secret-code", "SECRET-TAG"):
            assert value not in page
