"""Versions and releases: drafts run nowhere until published, publish, rollback, diff."""

from datetime import UTC, datetime

import pytest

from entities.models import Entity
from jobs.filter_runs import run_items_make
from jobs.models import Run
from jobs.schedules import schedule_fire
from jobs.triggers import entity_events_dispatch
from tests.factories import make_entities, make_workflow, run_inline
from workflows.models import Step, Workflow

pytestmark = pytest.mark.django_db


def _set_title(value: str) -> dict:
    return {
        "id": "title",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "title", "value": value}]},
    }


PUBLISH = {"id": "pub", "type": "publish", "config": {}}


def _create(api, product_type, steps=None, **extra) -> str:
    body = {
        "name": "w",
        "entityTypeId": product_type.pk,
        "steps": steps or [_set_title("live"), PUBLISH],
        **extra,
    }
    response = api.post("/api/v1/workflows", body)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _draft(api, workflow_id, steps, **extra) -> dict:
    response = api.patch(
        f"/api/v1/workflows/{workflow_id}", {"steps": steps, "draft": True, **extra}
    )
    assert response.status_code == 200, response.content
    return response.json()


def _titles(ids) -> set[str]:
    return set(Entity.objects.filter(pk__in=ids).values_list("data__title", flat=True))


def test_a_draft_is_stored_but_not_live(api, product_type):
    workflow_id = _create(api, product_type)
    body = _draft(api, workflow_id, [_set_title("draft"), PUBLISH], note="Try a new title")
    assert (body["version"], body["latestVersion"]) == (1, 2)
    assert body["steps"][0]["config"]["operations"][0]["value"] == "live"  # the live steps
    versions = api.get(f"/api/v1/workflows/{workflow_id}/versions").json()
    assert [(v["version"], v["live"], v["note"]) for v in versions] == [
        (2, False, "Try a new title"),
        (1, True, ""),
    ]
    assert set(versions[0]) == {"version", "createdAt", "createdBy", "note", "live", "steps"}
    assert versions[0]["createdBy"] == versions[1]["createdBy"] is not None
    one = api.get(f"/api/v1/workflows/{workflow_id}/versions/2").json()
    assert one == versions[0]


def test_a_draft_runs_nowhere_until_published(api, product_type, settings):
    settings.TRIGGER_DEBOUNCE_S = 0
    triggers = [
        {"on": "entity.created"},
        {"on": "schedule", "cron": "0 3 * * *", "filter": {}},
    ]
    workflow_id = _create(api, product_type, triggers=triggers)
    _draft(api, workflow_id, [_set_title("draft"), PUBLISH])

    # An API run without `version`, a trigger and a schedule all run the live version.
    ids = make_entities(product_type, 2)
    assert entity_events_dispatch() == 1
    triggered = Run.objects.get(workflow_id=workflow_id)
    started = api.post(f"/api/v1/workflows/{workflow_id}/run", {"entityIds": ids}).json()
    fire = schedule_fire(
        workflow_id=workflow_id, trigger_index=1, now=datetime(2026, 12, 3, 3, 0, 20, tzinfo=UTC)
    )
    runs = [triggered, Run.objects.get(pk=started["runId"]), fire.run]
    assert [run.workflow_version.number for run in runs] == [1, 1, 1]
    run_items_make(run_id=fire.run.pk)
    for run in runs:
        run_inline(run.pk)
    assert _titles(ids) == {"live"}

    # Published, it is what everything runs.
    response = api.post(f"/api/v1/workflows/{workflow_id}/versions/2/publish")
    assert response.status_code == 200, response.content
    assert (response.json()["version"], response.json()["latestVersion"]) == (2, 2)
    assert response.json()["steps"][0]["config"]["operations"][0]["value"] == "draft"
    started = api.post(f"/api/v1/workflows/{workflow_id}/run", {"entityIds": ids}).json()
    run_inline(started["runId"])
    assert Run.objects.get(pk=started["runId"]).workflow_version.number == 2
    assert _titles(ids) == {"draft"}


def test_a_run_may_name_a_draft_over_a_few_entities(api, product_type):
    workflow_id = _create(api, product_type)
    _draft(api, workflow_id, [_set_title("draft"), PUBLISH])
    ids = make_entities(product_type, 3)
    started = api.post(f"/api/v1/workflows/{workflow_id}/run", {"entityIds": ids[:1], "version": 2})
    assert started.status_code == 202, started.content
    run_inline(started.json()["runId"])
    over_filter = api.post(
        f"/api/v1/workflows/{workflow_id}/run",
        {"filter": {"status": "draft"}, "limit": 1, "version": 2},
    )
    assert over_filter.status_code == 202, over_filter.content
    assert Run.objects.get(pk=over_filter.json()["runId"]).workflow_version.number == 2
    assert Entity.objects.get(pk=ids[0]).data["title"] == "draft"
    assert _titles(ids[1:]) == {"Item 1", "Item 2"}
    assert Workflow.objects.get(pk=workflow_id).version == 1


def test_rollback_is_publishing_an_older_version(api, product_type):
    workflow_id = _create(api, product_type)
    api.patch(f"/api/v1/workflows/{workflow_id}", {"steps": [_set_title("v2"), PUBLISH]})
    assert Workflow.objects.get(pk=workflow_id).version == 2
    body = api.post(f"/api/v1/workflows/{workflow_id}/versions/1/publish").json()
    assert (body["version"], body["latestVersion"]) == (1, 2)
    assert list(Step.objects.filter(workflow_id=workflow_id).values_list("step_id", "config")) == [
        ("title", _set_title("live")["config"]),
        ("pub", {}),
    ]
    # Publishing the live version again changes nothing; a new edit follows the newest.
    again = api.post(f"/api/v1/workflows/{workflow_id}/versions/1/publish").json()
    assert (again["version"], again["latestVersion"]) == (1, 2)
    edited = api.patch(f"/api/v1/workflows/{workflow_id}", {"steps": [_set_title("v3")]}).json()
    assert (edited["version"], edited["latestVersion"]) == (3, 3)


def test_a_draft_equal_to_the_newest_version_makes_none(api, product_type):
    workflow_id = _create(api, product_type)
    body = _draft(api, workflow_id, [_set_title("live"), PUBLISH])
    assert (body["version"], body["latestVersion"]) == (1, 1)


def test_a_config_value_changed_from_1_to_true_is_a_new_version_and_in_its_diff(api, product_type):
    """Python's `1 == True`: compared so, the edit was dropped (200, still version 1)."""

    def condition(value):
        rule = {"field": "stock", "operator": "eq", "value": value}
        return {"id": "s", "type": "condition", "config": {"if": rule, "else": "stop"}}

    workflow_id = _create(api, product_type, steps=[condition(1)])
    response = api.patch(f"/api/v1/workflows/{workflow_id}", {"steps": [condition(True)]})
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2
    assert response.json()["steps"][0]["config"]["if"]["value"] is True
    diff = api.get(f"/api/v1/workflows/{workflow_id}/versions/2/diff").json()
    [change] = diff["changes"]
    assert change["fields"] == [{"path": "config.if.value", "before": 1, "after": True}]


def test_the_diff_names_each_step_and_config_path_that_changed(api, product_type):
    before = [
        {"id": "gen", "type": "ai_generate", "config": {"prompt": "Old", "outputField": "d"}},
        _set_title("same"),
        {"id": "check", "type": "validate", "config": {"rules": [{"field": "d"}]}},
        {"id": "old", "type": "publish", "config": {}},
    ]
    after = [
        {"id": "new", "type": "validate", "config": {"rules": [{"field": "title"}]}},
        {"id": "check", "type": "validate", "config": {"rules": [{"field": "d"}]}},
        {"id": "gen", "type": "ai_generate", "config": {"prompt": "New", "outputField": "d"}},
        _set_title("same"),
    ]
    workflow_id = _create(api, product_type, steps=before)
    _draft(api, workflow_id, after)
    response = api.get(f"/api/v1/workflows/{workflow_id}/versions/2/diff?against=1")
    assert response.status_code == 200, response.content
    changes = {change["stepId"]: change for change in response.json()["changes"]}
    assert set(changes) == {"new", "check", "gen", "old"}  # `title` kept its place
    assert changes["new"]["change"] == "added" and changes["new"]["before"] is None
    assert changes["old"]["change"] == "removed" and changes["old"]["after"] is None
    assert changes["check"]["change"] == "moved"
    assert changes["check"]["fields"] == [{"path": "position", "before": 2, "after": 1}]
    assert changes["gen"]["change"] == "changed"
    assert changes["gen"]["fields"] == [{"path": "config.prompt", "before": "Old", "after": "New"}]
    assert changes["gen"]["after"]["config"]["prompt"] == "New"
    # The other way round, what was added is removed.
    back = api.get(f"/api/v1/workflows/{workflow_id}/versions/1/diff?against=2").json()
    assert {c["stepId"]: c["change"] for c in back["changes"]}["new"] == "removed"
    same = api.get(f"/api/v1/workflows/{workflow_id}/versions/2/diff?against=2").json()
    assert same == {"changes": []}
    # Without `against`: the version before; version 1's adds every step.
    default = api.get(f"/api/v1/workflows/{workflow_id}/versions/2/diff").json()
    assert default == response.json()
    first = api.get(f"/api/v1/workflows/{workflow_id}/versions/1/diff").json()["changes"]
    assert [(c["stepId"], c["change"]) for c in first] == [
        ("gen", "added"),
        ("title", "added"),
        ("check", "added"),
        ("old", "added"),
    ]


def test_the_diff_compares_nested_config_keys_and_the_type_and_hides_secrets(api, product_type):
    def condition(value):
        rule = {"field": "price", "operator": "gt", "value": value}
        return {"id": "s", "type": "condition", "config": {"if": rule, "else": "stop"}}

    def notify(secret):
        config = {"channel": "webhook", "url": "https://hooks.example.com/x", "message": "m"}
        return {"id": "n", "type": "notify", "config": {**config, "secret": secret}}

    before = [condition(0), notify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), PUBLISH]
    after = [
        condition(5),
        notify("whsec_AAKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        {**PUBLISH, "type": "review", "config": {"instructions": "Ok?"}},
    ]
    workflow_id = _create(api, product_type, steps=before)
    _draft(api, workflow_id, after)
    body = api.get(f"/api/v1/workflows/{workflow_id}/versions/2/diff?against=1").json()
    changes = {change["stepId"]: change for change in body["changes"]}
    assert changes["s"]["fields"] == [{"path": "config.if.value", "before": 0, "after": 5}]
    assert changes["n"]["fields"] == [
        {"path": "config.secret", "before": "(hidden)", "after": "(hidden)"}
    ]
    assert "secret" not in changes["n"]["after"]["config"]
    assert "whsec_" not in str(body)
    assert changes["pub"]["fields"] == [
        {"path": "type", "before": "publish", "after": "review"},
        {"path": "config", "before": {}, "after": None},
        {"path": "config.instructions", "before": None, "after": "Ok?"},
    ]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("versions/9", 404, "not_found"),
        ("versions/x", 404, "not_found"),
        ("versions/0", 404, "not_found"),
        ("versions/1234567890", 404, "not_found"),
        ("versions/9/diff?against=1", 404, "not_found"),
        ("versions/1/diff?against=9", 404, "not_found"),
        ("versions/1/diff?against=", 400, "validation_error"),
        ("versions/1/diff?against=0", 400, "validation_error"),
        ("versions/1/diff?against=99999999999", 400, "validation_error"),
        ("versions/1/diff?against=two", 400, "validation_error"),
        ("versions/1/diff?against=1&agianst=2", 400, "validation_error"),
        ("versions?version=1", 400, "validation_error"),
    ],
)
def test_careless_version_reads_are_clear_errors(api, product_type, path, status, code):
    workflow_id = _create(api, product_type)
    response = api.get(f"/api/v1/workflows/{workflow_id}/{path}")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"draft": True}, "draft"),
        ({"note": "why"}, "note"),
        ({"steps": [_set_title("x")], "draft": "yes"}, "draft"),
        ({"steps": [_set_title("x")], "note": 3}, "note"),
        ({"steps": [_set_title("x")], "note": "n" * 1001}, "note"),
    ],
)
def test_careless_drafts_are_refused_and_store_nothing(api, product_type, body, field):
    workflow_id = _create(api, product_type)
    response = api.patch(f"/api/v1/workflows/{workflow_id}", body)
    assert response.status_code == 400, response.content
    assert field in {detail["field"] for detail in response.json()["error"]["details"]}
    workflow = Workflow.objects.get(pk=workflow_id)
    assert (workflow.version, workflow.latest_version, workflow.versions.count()) == (1, 1, 1)


@pytest.mark.parametrize("version", [9, 0, "2", -1, None, 1.5])
def test_a_run_of_a_version_that_is_not_there_is_refused(api, product_type, version):
    workflow_id = _create(api, product_type)
    ids = make_entities(product_type, 1)
    response = api.post(
        f"/api/v1/workflows/{workflow_id}/run", {"entityIds": ids, "version": version}
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"][0]["field"] == "version"
    assert not Run.objects.exists()


def test_publishing_careless_versions_is_refused(api, product_type, read_only_api):
    workflow_id = _create(api, product_type)
    _draft(api, workflow_id, [_set_title("draft")])
    assert api.post(f"/api/v1/workflows/{workflow_id}/versions/7/publish").status_code == 404
    assert api.post(f"/api/v1/workflows/{workflow_id}/versions/v2/publish").status_code == 404
    with_body = api.post(f"/api/v1/workflows/{workflow_id}/versions/2/publish", {"now": True})
    assert with_body.status_code == 400
    assert (
        read_only_api.post(f"/api/v1/workflows/{workflow_id}/versions/2/publish").status_code == 403
    )
    assert Workflow.objects.get(pk=workflow_id).version == 1


def test_a_publish_expecting_a_live_version_is_refused_once_another_went_live(api, product_type):
    """Two people compare their drafts with version 1; the second publish must not replace
    the first one's version, which the second never compared with."""
    workflow_id = _create(api, product_type)
    _draft(api, workflow_id, [_set_title("mine")])
    _draft(api, workflow_id, [_set_title("theirs")])
    url = f"/api/v1/workflows/{workflow_id}/versions/%d/publish"
    first = api.post(url % 2, {"expectedLiveVersion": 1})
    assert first.status_code == 200 and first.json()["version"] == 2
    second = api.post(url % 3, {"expectedLiveVersion": 1})
    assert second.status_code == 409, second.content
    error = second.json()["error"]
    assert error["code"] == "live_version_moved"
    assert "The live version is 2, not 1" in error["message"]
    assert Workflow.objects.get(pk=workflow_id).version == 2
    # Expecting the version that is live publishes; publishing the live one again with it
    # changes nothing, as without it.
    assert api.post(url % 3, {"expectedLiveVersion": 2}).json()["version"] == 3
    assert api.post(url % 3, {"expectedLiveVersion": 3}).json()["version"] == 3


@pytest.mark.parametrize(
    "body",
    [
        {"expectedLiveVersion": "1"},
        {"expectedLiveVersion": 0},
        {"expectedLiveVersion": 10**12},
        {"expectedLiveVersion": 1.5},
        {"expectedLiveVersion": None},
        {"expectedLiveVersion": [1]},
        {"expectedLiveVersion": 1, "force": True},
    ],
)
def test_a_careless_expected_live_version_is_a_400_naming_it(api, product_type, body):
    workflow_id = _create(api, product_type)
    _draft(api, workflow_id, [_set_title("draft")])
    response = api.post(f"/api/v1/workflows/{workflow_id}/versions/2/publish", body)
    assert response.status_code == 400, response.content
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert fields == ({"force"} if "force" in body else {"expectedLiveVersion"})
    assert Workflow.objects.get(pk=workflow_id).version == 1


def test_a_test_may_name_a_draft_and_commits_nothing(api, product_type):
    workflow_id = _create(api, product_type)
    _draft(api, workflow_id, [_set_title("draft"), PUBLISH])
    [entity_id] = make_entities(product_type, 1)
    url = f"/api/v1/workflows/{workflow_id}/test"
    drafted = api.post(url, {"entityId": entity_id, "version": 2}).json()
    assert (drafted["workflowVersion"], drafted["data"]["title"]) == (2, "draft")
    live = api.post(url, {"entityId": entity_id}).json()
    assert (live["workflowVersion"], live["data"]["title"]) == (1, "live")
    missing = api.post(url, {"entityId": entity_id, "version": 3})
    assert missing.status_code == 400
    assert missing.json()["error"]["details"][0]["field"] == "version"
    assert Entity.objects.get(pk=entity_id).data["title"] == "Item 0"


def test_the_same_steps_sent_again_with_a_float_jsonb_stores_as_an_int_make_no_version(
    api, product_type
):
    """`1e16` is stored by jsonb as the numeric 10000000000000000, read back as an int."""
    steps = [
        {
            "id": "big",
            "type": "transform",
            "config": {"operations": [{"op": "set", "field": "limit", "value": 1e16}]},
        }
    ]
    workflow = make_workflow(product_type, steps)
    before = api.get(f"/api/v1/workflows/{workflow.pk}").json()
    # The client sends its own copy of the steps again, unchanged (`1e16`, as it first did).
    response = api.patch(f"/api/v1/workflows/{workflow.pk}", {"steps": steps})
    assert response.status_code == 200, response.json()
    assert response.json()["latestVersion"] == before["latestVersion"]
