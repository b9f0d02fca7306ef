"""Regular expressions and JSON Schemas in step configs come from users: patterns run on RE2
(linear time; what it cannot run is a 400 naming the field) and a `jsonSchema` refers only
inside itself."""

import pytest

from jobs.models import RunItem
from tests.entities.test_schema_safety import CATASTROPHIC, EVIL_TEXT
from tests.factories import make_entities, make_workflow, run_inline, start_run
from tests.servers import start_schema_host
from workflows.models import WorkflowVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema_server():
    url, hits, server = start_schema_host()
    yield url, hits
    server.shutdown()
    server.server_close()


REFUSED_PATTERNS = ["(a)\\1", "a(?=b)", "(?<=x)y", "(?!x)", "a{1001}", "(", "\\Z"]


def _post(api, product_type, steps):
    body = {"name": "W", "entityTypeId": product_type.id, "steps": steps}
    return api.post("/api/v1/workflows", body)


def _refused_field(response) -> str:
    assert response.status_code == 400, response.json()
    [detail] = response.json()["error"]["details"]
    return detail["field"]


def _validate(pattern):
    return {"type": "validate", "config": {"rules": [{"field": "title", "pattern": pattern}]}}


def _matches(pattern, **extra):
    predicate = {"all": [{"field": "title", "operator": "exists"}]}
    predicate["all"].append({"field": "title", "operator": "matches", "value": pattern})
    return {"type": "condition", "config": {"if": predicate, **extra}}


@pytest.mark.parametrize("pattern", REFUSED_PATTERNS)
def test_a_pattern_re2_cannot_run_is_refused_in_every_step_that_takes_one(
    api, product_type, pattern
):
    field = _refused_field(_post(api, product_type, [_validate(pattern)]))
    assert field == "steps[0].config.rules[0].pattern"
    field = _refused_field(_post(api, product_type, [_matches(pattern)]))
    assert field == "steps[0].config.if.all[1].value"


@pytest.mark.parametrize("pattern", ["^[A-Z]", "(?i)lamp", "^\\d{3}-\\w+$", *CATASTROPHIC])
def test_patterns_re2_runs_are_accepted(api, product_type, pattern):
    response = _post(api, product_type, [_validate(pattern), _matches(pattern)])
    assert response.status_code == 201, response.json()


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_a_catastrophic_pattern_runs_in_linear_time_and_gives_the_right_answer(run_steps, pattern):
    steps = [_matches(pattern, **{"else": "fail"}), _validate(pattern)]
    items, _ = run_steps(steps, {"title": EVIL_TEXT}, {"title": "xxy" if "y" in pattern else "aa"})
    assert [item.status for item in items] == ["failed", "completed"]
    assert items[0].error.startswith("Condition not met: all of (title exists; title matches")
    [item], _ = run_steps([_validate(pattern)], {"title": EVIL_TEXT})
    assert item.status == "failed"
    assert item.error == f"Validation failed: title: must match {pattern!r}"


@pytest.mark.parametrize("pattern", ["^(?=L)amp", "(L)\\1"])
def test_a_saved_pattern_re2_cannot_run_fails_its_entities_clearly(product_type, pattern):
    """A workflow saved before RE2 may hold a lookahead: its entities fail, naming it."""
    workflow = make_workflow(product_type, [_matches("^Lamp")])
    version = WorkflowVersion.objects.get(workflow=workflow)
    version.steps = [{**version.steps[0], "config": _matches(pattern)["config"]}]
    version.save()
    [entity_id] = make_entities(product_type, 1)
    run = start_run(workflow, [entity_id])
    run_inline(run.pk)
    item = RunItem.objects.get(run=run)
    assert item.status == "failed"
    assert item.error.startswith("Invalid regular expression") and repr(pattern) in item.error


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ({"$ref": "{url}/schema.json"}, "steps[0].config.jsonSchema.$ref"),
        ({"$ref": "file:///etc/passwd"}, "steps[0].config.jsonSchema.$ref"),
        (
            {"properties": {"tags": {"items": {"$ref": "{url}/tag.json"}}}},
            "steps[0].config.jsonSchema.properties.tags.items.$ref",
        ),
        ({"properties": {"a": {"pattern": "(a)\\1"}}},
         "steps[0].config.jsonSchema.properties.a.pattern"),
    ],
)  # fmt: skip
def test_an_ai_generate_json_schema_referring_outside_itself_is_refused_unfetched(
    api, product_type, schema_server, schema, field
):
    url, hits = schema_server
    schema = _replace_url(schema, url)
    step = {
        "type": "ai_generate",
        "config": {"prompt": "x", "outputField": "m", "responseFormat": "json"},
    }
    step["config"]["jsonSchema"] = schema
    assert _refused_field(_post(api, product_type, [step])) == field
    assert hits == []


@pytest.mark.parametrize(
    ("schema", "error"),
    [
        ({"$defs": {"meta": {"type": "object"}}, "$ref": "#/$defs/meta"}, None),
        (
            {"$defs": {"t": {"$id": "urn:t", "type": "array"}},
             "properties": {"tags": {"$ref": "urn:t"}}, "required": ["tags"]},
            "tags: must be of type array",
        ),
        (
            {"$defs": {"meta": {"type": "object", "required": ["x"], "properties": {"x": {}}}},
             "$ref": "#/$defs/meta"},
            "'x' is a required property",
        ),
    ],
)  # fmt: skip
def test_an_ai_generate_json_schema_with_local_references_checks_the_answer(
    run_steps, schema, error
):
    step = {
        "type": "ai_generate",
        "config": {
            "prompt": "Tags for {{ entity.title }}",
            "outputField": "meta",
            "responseFormat": "json",
            "jsonSchema": schema,
        },
    }
    [item], _ = run_steps([step], {"title": "Lamp"})
    if error is None:
        assert item.status == "completed", item.error
    else:
        assert item.status == "failed" and error in item.error


def _replace_url(value, url):
    if isinstance(value, dict):
        return {key: _replace_url(item, url) for key, item in value.items()}
    return value.replace("{url}", url) if isinstance(value, str) else value


def test_an_ai_generate_json_schema_whose_checks_multiply_is_refused(api, product_type):
    defs = {f"d{i}": {"allOf": [{"$ref": f"#/$defs/d{i + 1}"}] * 2} for i in range(20)}
    defs["d20"] = {"type": "object"}  # the last reference points at something
    step = {
        "type": "ai_generate",
        "config": {"prompt": "x", "outputField": "m", "responseFormat": "json"},
    }
    step["config"]["jsonSchema"] = {"$defs": defs, "$ref": "#/$defs/d0"}
    assert _refused_field(_post(api, product_type, [step])) == "steps[0].config.jsonSchema"
