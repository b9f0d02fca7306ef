import pytest

from workflows.models import Workflow

pytestmark = pytest.mark.django_db


def _post(api, product_type, steps, **overrides):
    body = {"name": "W", "entityTypeId": product_type.id, "steps": steps, **overrides}
    return api.post("/api/v1/workflows", body)


def _fields(response) -> list[str]:
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "validation_error"
    return [detail["field"] for detail in response.json()["error"]["details"]]


PUBLISH = {"type": "publish", "config": {}}


def test_missing_name(api, product_type):
    response = api.post("/api/v1/workflows", {"entityTypeId": product_type.id, "steps": [PUBLISH]})
    assert _fields(response) == ["name"]


def test_unknown_entity_type(api, product_type):
    assert _fields(_post(api, product_type, [PUBLISH], entityTypeId="ety_nope")) == ["entityTypeId"]


def test_unknown_step_type_names_the_types(api, product_type):
    response = _post(api, product_type, [PUBLISH, {"type": "teleport", "config": {}}])
    assert _fields(response) == ["steps[1].type"]
    assert "ai_generate" in response.json()["error"]["message"]


def test_missing_config_field_is_named_by_path(api, product_type):
    steps = [PUBLISH, PUBLISH, {"type": "ai_generate", "config": {"outputField": "x"}}]
    response = _post(api, product_type, steps)
    assert _fields(response) == ["steps[2].config.prompt"]
    assert response.json()["error"]["message"] == "steps[2].config.prompt: This field is required."


@pytest.mark.parametrize(
    ("step", "field"),
    [
        (
            {
                "type": "ai_generate",
                "config": {"prompt": "x", "outputField": "a", "temperature": "hot"},
            },
            "steps[0].config.temperature",
        ),
        (
            {"type": "ai_generate", "config": {"prompt": "{{ oops", "outputField": "a"}},
            "steps[0].config.prompt",
        ),
        (
            {
                "type": "ai_generate",
                "config": {"prompt": "x", "outputField": "a", "jsonSchema": {"type": "object"}},
            },
            "steps[0].config.jsonSchema",
        ),
        (
            {"type": "validate", "config": {"rules": [{"field": "a", "pattern": "("}]}},
            "steps[0].config.rules[0].pattern",
        ),
        (
            {"type": "validate", "config": {"rules": [{"type": "string"}]}},
            "steps[0].config.rules[0].field",
        ),
        (
            {"type": "transform", "config": {"operations": [{"op": "explode", "field": "a"}]}},
            "steps[0].config.operations[0].op",
        ),
        (
            {"type": "transform", "config": {"operations": [{"op": "copy", "from": "a"}]}},
            "steps[0].config.operations[0].to",
        ),
        (
            {"type": "condition", "config": {"if": {"field": "a", "operator": "near", "value": 1}}},
            "steps[0].config.if.operator",
        ),
        (
            {"type": "condition", "config": {"if": {"any": [{"field": "a", "operator": "gt"}]}}},
            "steps[0].config.if.any[0].value",
        ),
        (
            {
                "type": "condition",
                "config": {"if": {"field": "a", "operator": "exists"}, "else": "explode"},
            },
            "steps[0].config.else",
        ),
        ({"type": "publish", "config": {"status": "gone"}}, "steps[0].config.status"),
        ({"type": "notify", "config": {"channel": "webhook"}}, "steps[0].config.url"),
        (
            {"type": "notify", "config": {"channel": "webhook", "url": "ftp://x"}},
            "steps[0].config.url",
        ),
        (
            {"type": "notify", "config": {"channel": "email", "to": "not-an-email"}},
            "steps[0].config.to",
        ),
        ({"type": "notify", "config": {"channel": "sms"}}, "steps[0].config.channel"),
        ({"type": "publish", "config": {"colour": "red"}}, "steps[0].config.colour"),
        ({"type": "publish", "config": []}, "steps[0].config"),
        ({"type": "publish"}, "steps[0].config"),
        ({"config": {}}, "steps[0].type"),
        ({"id": "bad id!", "type": "publish", "config": {}}, "steps[0].id"),
        ("publish", "steps[0]"),
    ],
)
def test_each_bad_config_is_named_by_path(api, product_type, step, field):
    assert field in _fields(_post(api, product_type, [step]))
    assert Workflow.objects.count() == 0


def test_duplicate_step_ids(api, product_type):
    steps = [{"id": "a", **PUBLISH}, {"id": "a", **PUBLISH}]
    assert _fields(_post(api, product_type, steps)) == ["steps[1].id"]


@pytest.mark.parametrize("steps", ["publish", {"type": "publish"}, None])
def test_steps_not_a_list(api, product_type, steps):
    assert _fields(_post(api, product_type, steps)) == ["steps"]


def test_too_many_steps(api, product_type, settings):
    settings.WORKFLOW_MAX_STEPS = 5
    assert _fields(_post(api, product_type, [PUBLISH] * 6)) == ["steps"]
    assert _post(api, product_type, [PUBLISH] * 5).status_code == 201


def test_no_steps(api, product_type):
    assert _fields(_post(api, product_type, [])) == ["steps"]


def test_patch_with_bad_steps_changes_nothing(api, product_type):
    created = _post(api, product_type, [PUBLISH]).json()
    response = api.patch(
        f"/api/v1/workflows/{created['id']}",
        {"name": "new", "steps": [{"type": "nope", "config": {}}]},
    )
    assert _fields(response) == ["steps[0].type"]
    workflow = Workflow.objects.get(pk=created["id"])
    assert (workflow.name, workflow.version) == ("W", 1)
