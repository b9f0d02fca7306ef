import pytest

from workflows.models import Workflow, WorkflowVersion
from workflows.steps import registry

pytestmark = pytest.mark.django_db

LIST_FIELDS = {
    "id",
    "name",
    "description",
    "status",
    "stepsCount",
    "lastRunAt",
    "version",
    "latestVersion",
    "entityTypeId",
    "createdAt",
    "updatedAt",
}


def _create(api, product_type, **overrides):
    body = {
        "name": "Enrich products",
        "description": "Write descriptions, then publish",
        "entityTypeId": product_type.id,
        "steps": [
            {
                "type": "ai_generate",
                "config": {"prompt": "Describe {{ entity.title }}", "outputField": "description"},
            },
            {"type": "publish", "config": {}},
        ],
        **overrides,
    }
    return api.post("/api/v1/workflows", body)


def test_create_returns_every_documented_field(api, product_type):
    response = _create(api, product_type)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == LIST_FIELDS | {"steps", "triggers"}
    assert body["id"].startswith("wf_")
    assert body["name"] == "Enrich products"
    assert body["description"] == "Write descriptions, then publish"
    assert body["status"] == "active"
    assert body["stepsCount"] == 2
    assert body["lastRunAt"] is None
    assert body["version"] == 1
    assert body["entityTypeId"] == product_type.id
    assert [step["type"] for step in body["steps"]] == ["ai_generate", "publish"]
    assert all(set(step) == {"id", "type", "config"} for step in body["steps"])
    assert [step["id"] for step in body["steps"]] == ["ai_generate_1", "publish_1"]


def test_round_trip_of_every_step_type(api, product_type, all_six_steps):
    steps = [{"id": f"s{index}", **step} for index, step in enumerate(all_six_steps)]
    created = _create(api, product_type, steps=steps).json()
    fetched = api.get(f"/api/v1/workflows/{created['id']}").json()
    assert fetched == created
    shown = [
        {**step, "config": registry.get(step["type"]).shown_config(step["config"])}
        for step in steps
    ]
    assert fetched["steps"] == shown  # a secret is shown only as `secretSet`
    assert {step["type"] for step in fetched["steps"]} == {
        "ai_generate",
        "validate",
        "publish",
        "notify",
        "transform",
        "condition",
        "review",
        "delay",
        "wait_for_event",
    }


def test_list_shows_documented_fields_without_steps(api, product_type):
    created = _create(api, product_type).json()
    rows = api.get("/api/v1/workflows").json()
    assert len(rows) == 1
    assert set(rows[0]) == LIST_FIELDS
    assert rows[0]["id"] == created["id"]
    assert rows[0]["stepsCount"] == 2


def test_list_makes_a_constant_number_of_queries(api, product_type, django_assert_num_queries):
    for index in range(3):
        _create(api, product_type, name=f"w{index}")
    api.get("/api/v1/workflows")  # the key's last use is recorded once a minute, not per call
    # The key lookup and the page (steps and last runs annotated); the user's permissions are
    # in the cache since the first request.
    with django_assert_num_queries(2) as few:
        api.get("/api/v1/workflows")
    queries_for_three = len(few)
    for index in range(30):
        _create(api, product_type, name=f"more{index}")
    with django_assert_num_queries(queries_for_three):
        rows = api.get("/api/v1/workflows").json()
    assert len(rows) == 33


def test_create_as_draft_and_filter_by_status(api, product_type):
    draft = _create(api, product_type, status="draft").json()
    active = _create(api, product_type).json()
    assert draft["status"] == "draft"
    assert [w["id"] for w in api.get("/api/v1/workflows?status=draft").json()] == [draft["id"]]
    assert [w["id"] for w in api.get("/api/v1/workflows?status=active").json()] == [active["id"]]


def test_delete_archives(api, product_type):
    created = _create(api, product_type).json()
    response = api.delete(f"/api/v1/workflows/{created['id']}")
    assert response.status_code == 200
    assert response.json()["status"] == "archived"
    assert Workflow.objects.get(pk=created["id"]).status == "archived"
    assert api.get(f"/api/v1/workflows/{created['id']}").json()["status"] == "archived"


def test_patch_replacing_steps_bumps_the_version_and_keeps_the_old_one(api, product_type):
    created = _create(api, product_type).json()
    response = api.patch(
        f"/api/v1/workflows/{created['id']}",
        {"steps": [{"type": "publish", "config": {"status": "draft"}}]},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == 2
    assert body["stepsCount"] == 1
    versions = dict(
        WorkflowVersion.objects.filter(workflow_id=created["id"]).values_list("number", "steps")
    )
    assert [s["type"] for s in versions[1]] == ["ai_generate", "publish"]
    assert versions[2] == [{"id": "publish_1", "type": "publish", "config": {"status": "draft"}}]


def test_patch_without_steps_keeps_the_version(api, product_type):
    created = _create(api, product_type).json()
    body = api.patch(
        f"/api/v1/workflows/{created['id']}", {"name": "Renamed", "status": "draft"}
    ).json()
    assert (body["name"], body["status"], body["version"]) == ("Renamed", "draft", 1)
    same = api.patch(f"/api/v1/workflows/{created['id']}", {"steps": created["steps"]}).json()
    assert same["version"] == 1


def test_read_only_key_cannot_create(read_only_api, product_type):
    assert _create(read_only_api, product_type).status_code == 403
    assert read_only_api.get("/api/v1/workflows").status_code == 200


def test_unknown_workflow_is_404(api):
    assert api.get("/api/v1/workflows/wf_missing").status_code == 404
