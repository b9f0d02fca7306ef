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
        # A final newline: Python's `$` matches before it, JSON Schema's does not.
        ({"id": "a" * 64 + "\n", "type": "publish", "config": {}}, "steps[0].id"),
        (
            {"type": "wait_for_event", "config": {"event": "translation.done\n", "key": "k"}},
            "steps[0].config.event",
        ),
        (
            {"type": "transform", "config": {"operations": [{"op": "remove", "field": "a\n"}]}},
            "steps[0].config.operations[0].field",
        ),
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


def _ai(prompt: str, step_id: str | None = None, **config) -> dict:
    step = {"type": "ai_generate", "config": {"prompt": prompt, "outputField": "x", **config}}
    return {**step, "id": step_id} if step_id else step


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ steps.nope.text }}", "no step has the id 'nope'"),
        ('{{ steps["nope"] }}', "no step has the id 'nope'"),
        ("{{ steps.later.text }}", "comes after this one (steps[2])"),
        ("{% if steps.me %}x{% endif %}", "that is this step"),
        ("{{ (steps.later or {}).get('text', '') | upper }}", "comes after"),
    ],
)
def test_a_template_naming_a_step_not_before_it_is_a_400_naming_its_path(
    api, product_type, template, reason
):
    steps = [_ai("Hi", "first"), _ai(template, "me"), _ai("Bye", "later")]
    response = _post(api, product_type, steps)
    assert _fields(response) == ["steps[1].config.prompt"]
    detail = response.json()["error"]["details"][0]
    assert detail["code"] == "unknown_step"
    assert reason in detail["message"]
    assert not Workflow.objects.exists()


def test_every_template_field_is_checked_and_each_problem_named(api, product_type):
    steps = [
        _ai("ok", "first", system="{{ steps.gone }}"),
        {
            "type": "transform",
            "config": {"operations": [{"op": "set", "field": "a", "value": "{{ steps.x }}"}]},
        },
        {
            "type": "notify",
            "config": {"channel": "email", "to": "a@example.com", "message": "{{ steps.y }}"},
        },
    ]
    response = _post(api, product_type, steps)
    assert sorted(_fields(response)) == [
        "steps[0].config.system",
        "steps[1].config.operations[0].value",
        "steps[2].config.message",
    ]


@pytest.mark.parametrize(
    "template",
    [
        "{{ steps.first.text }} {{ steps['first'] }}",
        "{% for name, out in steps.items() %}{{ name }}{% endfor %}",
        "{% set steps = {'x': 1} %}{{ steps.x }}",
        "{% for steps in [1] %}{{ steps }}{% endfor %}",
        "{{ steps[entity.which] }}",
        "{{ entity.steps.nope }}",
    ],
)
def test_templates_reading_earlier_steps_or_no_step_by_name_are_accepted(
    api, product_type, template
):
    response = _post(api, product_type, [_ai("Hi", "first"), _ai(template)])
    assert response.status_code == 201, response.json()


def test_generated_ids_count_and_a_patch_is_checked_too(api, product_type):
    created = _post(api, product_type, [_ai("Hi"), _ai("{{ steps.ai_generate_1.text }}")])
    assert created.status_code == 201, created.json()
    workflow = created.json()["id"]
    response = api.patch(
        f"/api/v1/workflows/{workflow}",
        {"steps": [_ai("{{ steps.ai_generate_2 }}"), _ai("Hi")], "name": "Renamed"},
    )
    assert _fields(response) == ["steps[0].config.prompt"]
    assert api.get(f"/api/v1/workflows/{workflow}").json()["name"] == "W"
