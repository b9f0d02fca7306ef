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
        ([{"on": "schedule", "cron": "0 3 * * mon#2"}], "triggers[0].cron"),
        ([{"on": "schedule", "cron": "0 3 * * 7"}], "triggers[0].cron"),
        # beat and croniter (which works out a fire's tick) read these differently: beat
        # fires at 2:00, croniter reads 3:00, so the 2:00 fire counted as 23:00's, already run
        ([{"on": "schedule", "cron": "0 20-4/3 * * *"}], "triggers[0].cron"),
        ([{"on": "schedule", "cron": "0 3 26-26 * *"}], "triggers[0].cron"),  # croniter: `*`
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
        (
            [{"on": "schedule", "cron": "0 3 * * *", "timezone": "localtime"}],
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


def test_a_watched_field_named_as_a_nested_path_is_a_400_naming_the_top_level_field(
    api, product_type
):
    """Steps read `seo.title` as a path; a trigger compares whole top-level keys, so one
    watching `seo.title` was taken and never fired (no top-level key has that name). It
    is refused, saying which field to watch; a closed schema's field named so is taken."""
    triggers = [{"on": "entity.updated", "fields": ["title", "seo.title"]}]
    response = _create(api, product_type, triggers)
    assert response.status_code == 400, response.content
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "triggers[0].fields[1]"
    assert "watch `seo`" in detail["message"]
    dotted = {"type": "object", "properties": {"seo.title": {"type": "string"}}}
    closed = make_entity_type(schema={**dotted, "additionalProperties": False})
    response = _create(api, closed, [{"on": "entity.updated", "fields": ["seo.title"]}])
    assert response.status_code == 201, response.content


def test_the_openapi_schema_lists_the_trigger_shapes(api):
    schema = api.get("/api/v1/schema?format=json").json()
    for name in ("WorkflowCreateRequest", "PatchedWorkflowUpdateRequest", "WorkflowDetail"):
        triggers = schema["components"]["schemas"][name]["properties"]["triggers"]
        shapes = {item["properties"]["on"]["enum"][0] for item in triggers["items"]["oneOf"]}
        assert shapes == {"entity.created", "entity.updated", "schedule"}, name


LONG_MINUTES = ",".join(["0"] * 121)  # 241 characters: a valid cron beat's column cannot hold


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ({"on": "entity.updated", "fields": [f"f{i}" for i in range(101)]}, "triggers[0].fields"),
        ({"on": "entity.updated", "fields": ["title", "x" * 201]}, "triggers[0].fields[1]"),
        ({"on": "schedule", "cron": f"{LONG_MINUTES} * * * *"}, "triggers[0].cron"),
        ({"on": "schedule", "cron": "0 3 * * *" + " " * 300}, "triggers[0].cron"),
        ({"on": "schedule", "cron": "* " * 100_000}, "triggers[0].cron"),
        (
            {"on": "schedule", "cron": "0 3 * * *", "timezone": "Europe/" + "x" * 100_000},
            "triggers[0].timezone",
        ),
    ],
)
def test_a_trigger_longer_than_what_stores_it_is_a_400_naming_the_field(
    api, product_type, trigger, field
):
    response = _create(api, product_type, [trigger])
    assert response.status_code == 400, response.content
    details = response.json()["error"]["details"]
    assert [d["field"] for d in details] == [field]
    assert len(response.content) < 2000  # the value is not echoed back
    from workflows.models import Workflow

    assert not Workflow.objects.exists()


def test_a_hundred_watched_fields_of_two_hundred_characters_are_taken(api, product_type):
    fields = [f"{i:03d}".ljust(200, "x") for i in range(100)]
    response = _create(api, product_type, [{"on": "entity.updated", "fields": fields}])
    assert response.status_code == 201, response.content


def test_the_longest_cron_each_column_holds_is_taken(api, product_type):
    cron = f"{','.join(['0'] * 120)} 3 * * *"  # 239 + 8 characters
    response = _create(api, product_type, [{"on": "schedule", "cron": cron}])
    assert response.status_code == 201, response.content


def test_twenty_identical_schedules_are_a_400_naming_each_duplicate(api, product_type):
    every_minute = {"on": "schedule", "cron": "* * * * *"}
    response = _create(api, product_type, [every_minute] * 20)
    assert response.status_code == 400, response.content
    details = response.json()["error"]["details"]
    assert [d["field"] for d in details] == [f"triggers[{i}]" for i in range(1, 20)]
    assert {d["code"] for d in details} == {"duplicate"}
    assert "triggers[0]" in details[0]["message"]
    from django_celery_beat.models import PeriodicTask

    from workflows.models import Workflow

    assert not Workflow.objects.exists() and not PeriodicTask.objects.exists()


def test_schedules_alike_but_for_spacing_utc_and_filter_key_order_are_duplicates(api, product_type):
    triggers = [
        {"on": "entity.created"},
        {"on": "schedule", "cron": "0 3 * * *", "filter": {"status": "draft", "ids": ["a"]}},
        {
            "on": "schedule",
            "cron": "0  3 * * *",
            "timezone": "UTC",
            "filter": {"ids": ["a"], "status": "draft"},
        },
    ]
    response = _create(api, product_type, triggers)
    assert response.status_code == 400, response.content
    (detail,) = response.json()["error"]["details"]
    assert detail["field"] == "triggers[2]" and "triggers[1]" in detail["message"]


def test_schedules_differing_in_cron_zone_or_filter_are_taken(api, product_type):
    triggers = [
        {"on": "schedule", "cron": "0 3 * * *"},
        {"on": "schedule", "cron": "0 4 * * *"},
        {"on": "schedule", "cron": "0 3 * * *", "timezone": "Europe/Paris"},
        {"on": "schedule", "cron": "0 3 * * *", "filter": {"status": "draft"}},
    ]
    response = _create(api, product_type, triggers)
    assert response.status_code == 201, response.content


def test_a_duplicate_schedule_in_an_update_is_a_400_and_changes_nothing(api, product_type):
    nightly = {"on": "schedule", "cron": "0 3 * * *"}
    workflow_id = _create(api, product_type, [nightly]).json()["id"]
    response = api.patch(f"/api/v1/workflows/{workflow_id}", {"triggers": [nightly, nightly]})
    assert response.status_code == 400
    assert api.get(f"/api/v1/workflows/{workflow_id}").json()["triggers"] == [nightly]


def test_the_openapi_schema_bounds_watched_fields_and_cron_lengths(api):
    schema = api.get("/api/v1/schema?format=json").json()
    triggers = schema["components"]["schemas"]["WorkflowCreateRequest"]["properties"]["triggers"]
    updated, schedule = triggers["items"]["oneOf"][1:]
    fields = updated["properties"]["fields"]
    assert (fields["maxItems"], fields["items"]["maxLength"]) == (100, 200)
    assert schedule["properties"]["cron"]["maxLength"] == 255
    assert schedule["properties"]["timezone"]["maxLength"] == 63


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("61 * * * *", "Its minute field `61` is not valid: it takes 0-59"),
        ("0 25 * * *", "Its hour field `25` is not valid: it takes 0-23"),
        ("0 3 32 * *", "Its day field `32` is not valid: it takes 1-31"),
        ("0 3 * foo *", "Its month field `foo` is not valid: it takes 1-12 or jan-dec"),
        ("0 3 * * 1 2", "Must be a cron expression of 5 fields"),
    ],
)
def test_a_cron_out_of_range_is_refused_naming_its_field(api, product_type, cron, message):
    """Five fields with one out of range was "Must be a cron expression of 5 fields"."""
    body = {
        "name": "s",
        "entityTypeId": product_type.pk,
        "steps": [{"type": "publish", "config": {}}],
        "triggers": [{"on": "schedule", "cron": cron}],
    }
    [detail] = api.post("/api/v1/workflows", body).json()["error"]["details"]
    assert detail["field"] == "triggers[0].cron" and detail["message"].startswith(message)
