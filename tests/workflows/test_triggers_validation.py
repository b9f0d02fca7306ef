"""A workflow's `triggers` are checked like its steps: a 400 naming the field."""

import pytest

from tests.factories import PRODUCT_SCHEMA, make_entity_type

pytestmark = pytest.mark.django_db

STEPS = [{"type": "publish", "config": {}}]


def _create(api, product_type, triggers):
    return api.post(
        "/api/v1/workflows",
        {"name": "w", "entityTypeId": product_type.pk, "steps": STEPS, "triggers": triggers},
    )


def test_good_triggers_are_stored_and_shown(api, product_type):
    triggers = [
        {"on": "entity.created"},
        {"on": "entity.updated", "fields": ["title", "price"]},
        {"on": "schedule", "cron": "0 3 * * *", "timezone": "Europe/Paris"},
        {"on": "schedule", "cron": "*/5 * * * *", "filter": {"status": "draft"}},
    ]
    response = _create(api, product_type, triggers)
    assert response.status_code == 201, response.content
    assert response.json()["triggers"] == triggers
    workflow_id = response.json()["id"]
    patched = api.patch(f"/api/v1/workflows/{workflow_id}", {"triggers": []})
    assert patched.status_code == 200 and patched.json()["triggers"] == []


@pytest.mark.parametrize(
    ("triggers", "field"),
    [
        ({"on": "entity.created"}, "triggers"),
        (["entity.created"], "triggers[0]"),
        ([{"on": "entity.deleted"}], "triggers[0].on"),
        ([{}], "triggers[0].on"),
        ([{"on": "entity.created", "fields": ["title"]}], "triggers[0].fields"),
        ([{"on": "entity.updated", "fields": "title"}], "triggers[0].fields"),
        ([{"on": "entity.updated", "fields": [1]}], "triggers[0].fields"),
        ([{"on": "entity.updated", "fields": []}], "triggers[0].fields"),
        ([{"on": "schedule"}], "triggers[0].cron"),
        ([{"on": "schedule", "cron": "every day"}], "triggers[0].cron"),
        ([{"on": "schedule", "cron": "61 * * * *"}], "triggers[0].cron"),
        ([{"on": "schedule", "cron": "0 3 * * * *"}], "triggers[0].cron"),
        ([{"on": "schedule", "cron": 5}], "triggers[0].cron"),
        # croniter takes these, beat's crontab does not: refused rather than never fired
        ([{"on": "schedule", "cron": "0 3 L * *"}], "triggers[0].cron"),
        ([{"on": "schedule", "cron": "0 3 * * 1#2"}], "triggers[0].cron"),
        ([{"on": "schedule", "cron": "0 3 * * 7"}], "triggers[0].cron"),
        (
            [{"on": "schedule", "cron": "0 3 * * *", "timezone": "Mars/Olympus"}],
            "triggers[0].timezone",
        ),
        ([{"on": "schedule", "cron": "0 3 * * *", "timezone": 1}], "triggers[0].timezone"),
        # a folder of the tz database, a name too long for a file, a path: not zones
        ([{"on": "schedule", "cron": "0 3 * * *", "timezone": "Europe"}], "triggers[0].timezone"),
        ([{"on": "schedule", "cron": "0 3 * * *", "timezone": "A" * 300}], "triggers[0].timezone"),
        (
            [{"on": "schedule", "cron": "0 3 * * *", "timezone": "../../etc/passwd"}],
            "triggers[0].timezone",
        ),
        ([{"on": "schedule", "cron": "0 3 * * *", "timezone": "UTC\x00"}], "triggers[0].timezone"),
        # files ZoneInfo opens that are no zone names: they differ between hosts
        (
            [{"on": "schedule", "cron": "0 3 * * *", "timezone": "posix/Europe/Paris"}],
            "triggers[0].timezone",
        ),
        (
            [{"on": "schedule", "cron": "0 3 * * *", "timezone": "posixrules"}],
            "triggers[0].timezone",
        ),
        ([{"on": "schedule", "cron": "0 3 * * *", "filter": {"x": 1}}], "triggers[0].filter.x"),
        (
            [{"on": "schedule", "cron": "0 3 * * *", "filter": {"status": "gone"}}],
            "triggers[0].filter.status",
        ),
    ],
)
def test_a_bad_trigger_is_a_400_naming_the_field(api, product_type, triggers, field):
    response = _create(api, product_type, triggers)
    assert response.status_code == 400, response.content
    assert field in [d["field"] for d in response.json()["error"]["details"]]
    from workflows.models import Workflow

    assert not Workflow.objects.exists()


def test_a_bad_trigger_in_an_update_is_a_400_and_changes_nothing(api, product_type):
    workflow_id = _create(api, product_type, [{"on": "entity.created"}]).json()["id"]
    response = api.patch(f"/api/v1/workflows/{workflow_id}", {"triggers": [{"on": "nope"}]})
    assert response.status_code == 400
    shown = api.get(f"/api/v1/workflows/{workflow_id}").json()["triggers"]
    assert shown == [{"on": "entity.created"}]


def test_watched_fields_must_be_declared_when_the_schema_closes_its_fields(api):
    closed = make_entity_type(schema={**PRODUCT_SCHEMA, "additionalProperties": False})
    triggers = [{"on": "entity.updated", "fields": ["title", "colour"]}]
    response = _create(api, closed, triggers)
    assert response.status_code == 400, response.content
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "triggers[0].fields[1]" and "colour" in detail["message"]


def test_an_open_schema_takes_any_watched_field(api, product_type):
    """PRODUCT_SCHEMA does not close its fields: an entity may carry `colour`, so a trigger
    may watch it."""
    triggers = [{"on": "entity.updated", "fields": ["colour"]}]
    response = _create(api, product_type, triggers)
    assert response.status_code == 201, response.content
    assert response.json()["triggers"] == triggers


def test_the_openapi_schema_lists_the_trigger_shapes(api):
    schema = api.get("/api/v1/schema?format=json").json()
    for name in ("WorkflowCreateRequest", "PatchedWorkflowUpdateRequest", "WorkflowDetail"):
        triggers = schema["components"]["schemas"][name]["properties"]["triggers"]
        shapes = {item["properties"]["on"]["enum"][0] for item in triggers["items"]["oneOf"]}
        assert shapes == {"entity.created", "entity.updated", "schedule"}, name
