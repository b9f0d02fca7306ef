"""Request bodies are taken as the OpenAPI schema describes them, on every write endpoint: an
unknown field is a 400 naming it (a typo is not silently dropped), and a value of the wrong
JSON type is a 400 naming it (a number is not stored as a string). Each class is tried with
several payloads next to the good request it breaks."""

import functools
from dataclasses import dataclass

import pytest
from drf_spectacular.generators import SchemaGenerator

from entities.models import Entity, EntityType
from jobs.models import Experiment, Run
from jobs.waits.event.models import Event
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

NOT_STRINGS = [5, 1.5, True, {}, ["a"]]
NOT_BOOLEANS = ["true", 1, 0, "yes", {}, []]


@functools.cache
def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


@dataclass
class Write:
    """One write endpoint (its operation in the OpenAPI schema) and its good body."""

    name: str
    operation: str
    path: str
    body: dict
    status: int

    @property
    def method(self) -> str:
        return self.operation.split()[0]


def typed_fields(operation: str, json_type: str) -> list[str]:
    """The request body's fields that the schema types as `json_type` (enums included)."""
    method, template = operation.split()
    spec = openapi()["paths"][template][method]
    if "requestBody" not in spec:
        return []
    components = openapi()["components"]["schemas"]

    def resolve(schema):
        ref = schema.get("$ref") or next(iter(schema.get("allOf", [])), {}).get("$ref")
        return components[ref.rsplit("/", 1)[1]] if ref else schema

    body = resolve(spec["requestBody"]["content"]["application/json"]["schema"])
    return [
        name
        for name, schema in body["properties"].items()
        if resolve(schema).get("type") == json_type and not schema.get("readOnly")
    ]


OPERATIONS = {
    "create entity type": "post /api/v1/entity-types",
    "update entity type": "patch /api/v1/entity-types/{id}",
    "create entity": "post /api/v1/entities",
    "update entity": "patch /api/v1/entities/{id}",
    "restore entity": "post /api/v1/entities/{id}/restore",
    "bulk create": "post /api/v1/entities/bulk",
    "create workflow": "post /api/v1/workflows",
    "update workflow": "patch /api/v1/workflows/{id}",
    "publish version": "post /api/v1/workflows/{id}/versions/{version}/publish",
    "run workflow": "post /api/v1/workflows/{id}/run",
    "test workflow": "post /api/v1/workflows/{id}/test",
    "estimate workflow": "post /api/v1/workflows/{id}/estimate",
    "retry run": "post /api/v1/workflows/{workflow_id}/runs/{id}/retry",
    "revert run": "post /api/v1/workflows/{workflow_id}/runs/{id}/revert",
    "create experiment": "post /api/v1/workflows/{workflow_id}/experiments",
    "cancel job": "post /api/v1/jobs/{id}/cancel",
    "approve review": "post /api/v1/reviews/{id}/approve",
    "reject review": "post /api/v1/reviews/{id}/reject",
    "decide reviews": "post /api/v1/reviews/decide",
    "send events": "post /api/v1/events",
}
WRITE_NAMES = list(OPERATIONS)


def writes(world) -> list[Write]:
    type_id, ids, wf = world["type"].pk, world["ids"], world["workflow"].pk
    run, job = world["finished"].pk, world["pending"].job.pk
    reviews = world["reviews"]
    return [
        Write(
            "create entity type",
            OPERATIONS["create entity type"],
            "/api/v1/entity-types",
            {"name": "pages", "description": "Web pages"},
            201,
        ),
        Write(
            "update entity type",
            OPERATIONS["update entity type"],
            f"/api/v1/entity-types/{type_id}",
            {"name": "goods", "description": "New"},
            200,
        ),
        Write(
            "create entity",
            OPERATIONS["create entity"],
            "/api/v1/entities",
            {"entityTypeId": type_id, "data": {"title": "Lamp"}},
            201,
        ),
        Write(
            "update entity",
            OPERATIONS["update entity"],
            f"/api/v1/entities/{ids[0]}",
            {"data": {"title": "Desk"}},
            200,
        ),
        Write(
            "restore entity",
            OPERATIONS["restore entity"],
            f"/api/v1/entities/{ids[1]}/restore",
            {"version": 1},
            200,
        ),
        Write(
            "bulk create",
            OPERATIONS["bulk create"],
            "/api/v1/entities/bulk",
            {"entityTypeId": type_id, "items": [{"data": {"title": "Chair"}}]},
            201,
        ),
        Write(
            "create workflow",
            OPERATIONS["create workflow"],
            "/api/v1/workflows",
            {
                "name": "Publish",
                "description": "Publishes",
                "entityTypeId": type_id,
                "status": "active",
                "steps": [{"type": "publish", "config": {}}],
            },
            201,
        ),
        Write(
            "update workflow",
            OPERATIONS["update workflow"],
            f"/api/v1/workflows/{wf}",
            {"name": "Renamed", "description": "Edited", "status": "active"},
            200,
        ),
        Write(
            "publish version",
            OPERATIONS["publish version"],
            f"/api/v1/workflows/{wf}/versions/1/publish",
            {},
            200,
        ),
        Write(
            "run workflow",
            OPERATIONS["run workflow"],
            f"/api/v1/workflows/{wf}/run",
            {"entityIds": ids[:2], "callbackUrl": "https://example.com/done"},
            202,
        ),
        Write(
            "test workflow",
            OPERATIONS["test workflow"],
            f"/api/v1/workflows/{wf}/test",
            {"entityId": ids[0]},
            200,
        ),
        Write(
            "estimate workflow",
            OPERATIONS["estimate workflow"],
            f"/api/v1/workflows/{wf}/estimate",
            {"entityIds": ids[:2]},
            200,
        ),
        Write(
            "retry run",
            OPERATIONS["retry run"],
            f"/api/v1/workflows/{wf}/runs/{run}/retry",
            {"useLatestVersion": True},
            202,
        ),
        Write(
            "revert run",
            OPERATIONS["revert run"],
            f"/api/v1/workflows/{wf}/runs/{run}/revert",
            {"force": False},
            202,
        ),
        Write(
            "create experiment",
            OPERATIONS["create experiment"],
            f"/api/v1/workflows/{wf}/experiments",
            {
                "candidate": 1,
                "entityIds": ids,
                "scorers": [{"type": "human", "name": "people"}],
            },
            202,
        ),
        Write("cancel job", OPERATIONS["cancel job"], f"/api/v1/jobs/{job}/cancel", {}, 200),
        Write(
            "approve review",
            OPERATIONS["approve review"],
            f"/api/v1/reviews/{reviews[0]}/approve",
            {"data": {"title": "Checked"}, "comment": "Fine"},
            200,
        ),
        Write(
            "reject review",
            OPERATIONS["reject review"],
            f"/api/v1/reviews/{reviews[1]}/reject",
            {"comment": "No"},
            200,
        ),
        Write(
            "decide reviews",
            OPERATIONS["decide reviews"],
            "/api/v1/reviews/decide",
            {"ids": reviews[2:], "decision": "approve", "comment": "All good"},
            200,
        ),
        Write(
            "send events",
            OPERATIONS["send events"],
            "/api/v1/events",
            {"name": "price.ok", "key": "sku-1", "data": {"price": 5}, "id": "evt-1"},
            200,
        ),
    ]


def counts() -> tuple:
    return (
        EntityType.objects.count(),
        Entity.objects.count(),
        Workflow.objects.count(),
        Run.objects.count(),
        Experiment.objects.count(),
        Event.objects.count(),
    )


def the_write(world, name: str) -> Write:
    [found] = [w for w in writes(world) if w.name == name]
    return found


def send(api, write: Write, body: dict):
    return getattr(api, write.method)(write.path, body)


def assert_refused(response, field_name: str, code: str):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert {"field": field_name, "code": code} in [
        {"field": d["field"], "code": d["code"]} for d in error["details"]
    ], error
    assert field_name in error["message"] or len(error["details"]) > 1


def test_the_list_of_writes_is_every_write_operation_of_the_schema(world):
    write_operations = {
        f"{method} {path}"
        for path, operations in openapi()["paths"].items()
        for method in operations
        if method in ("post", "patch", "put")
    }
    assert set(OPERATIONS.values()) == write_operations
    assert [w.name for w in writes(world)] == WRITE_NAMES


@pytest.mark.parametrize("name", WRITE_NAMES)
def test_the_good_request_is_accepted(api, world, name):
    write = the_write(world, name)
    response = send(api, write, write.body)
    assert response.status_code == write.status, response.content


@pytest.mark.parametrize("name", WRITE_NAMES)
@pytest.mark.parametrize("unknown", ["entityTypeID", "Name", "colour", "steps_count"])
def test_an_unknown_field_beside_a_good_body_is_a_400_naming_it(api, world, name, unknown):
    write = the_write(world, name)
    before = counts()
    response = send(api, write, {**write.body, unknown: "x"})
    assert_refused(response, unknown, "unknown_field")
    assert counts() == before


def test_a_typo_names_the_field_it_was_meant_to_be(api, world):
    write = the_write(world, "create entity")
    response = send(api, write, {**write.body, "entityTypeID": write.body["entityTypeId"]})
    [detail] = response.json()["error"]["details"]
    assert detail == {
        "field": "entityTypeID",
        "message": "Unknown field; did you mean `entityTypeId`?",
        "code": "unknown_field",
    }


def test_unknown_fields_inside_bulk_items_are_named_by_index(api, world):
    write = the_write(world, "bulk create")
    body = {**write.body, "items": [{"data": {"title": "A"}}, {"data": {"title": "B"}, "id": 1}]}
    assert_refused(send(api, write, body), "items[1].id", "unknown_field")


def test_every_problem_of_a_body_is_named_at_once(api, world):
    response = api.post("/api/v1/entity-types", {"name": 5, "descriptoin": "x", "schema": 3})
    fields = {d["field"]: d["code"] for d in response.json()["error"]["details"]}
    assert fields == {"name": "type", "descriptoin": "unknown_field", "schema": "type"}


STRING_FIELDS = [(n, f) for n, op in OPERATIONS.items() for f in typed_fields(op, "string")]
BOOLEAN_FIELDS = [(n, f) for n, op in OPERATIONS.items() for f in typed_fields(op, "boolean")]


def test_the_typed_fields_are_read_from_the_schema():
    """Guards the parametrisation below: it finds the fields the schema declares."""
    assert [f for n, f in STRING_FIELDS if n == "create workflow"] == [
        "name",
        "description",
        "entityTypeId",
        "status",
    ]
    assert BOOLEAN_FIELDS == [
        ("update workflow", "draft"),
        ("retry run", "useLatestVersion"),
        ("revert run", "force"),
    ]


@pytest.mark.parametrize(("name", "string_field"), STRING_FIELDS)
@pytest.mark.parametrize("value", NOT_STRINGS, ids=repr)
def test_a_non_string_where_the_schema_says_string_is_a_400(api, world, name, string_field, value):
    write = the_write(world, name)
    before = counts()
    response = send(api, write, {**write.body, string_field: value})
    assert_refused(response, string_field, "type")
    assert counts() == before


@pytest.mark.parametrize(("name", "boolean_field"), BOOLEAN_FIELDS)
@pytest.mark.parametrize("value", NOT_BOOLEANS, ids=repr)
def test_a_non_boolean_where_the_schema_says_boolean_is_a_400(
    api, world, name, boolean_field, value
):
    write = the_write(world, name)
    before = counts()
    response = send(api, write, {**write.body, boolean_field: value})
    assert_refused(response, boolean_field, "type")
    assert counts() == before


def test_a_number_name_is_not_stored_as_a_string(api, world):
    write = the_write(world, "create workflow")
    response = send(api, write, {**write.body, "name": 5})
    assert response.json()["error"]["message"] == "name: Must be a string, not a number."
    assert not Workflow.objects.filter(name="5").exists()


@pytest.mark.parametrize("step_type", [{}, [], 5, True, {"type": "publish"}], ids=repr)
def test_a_step_type_that_is_not_a_string_is_a_400(api, world, step_type):
    write = the_write(world, "create workflow")
    before = counts()
    response = send(api, write, {**write.body, "steps": [{"type": step_type, "config": {}}]})
    assert_refused(response, "steps[0].type", "type")
    assert counts() == before


def test_every_request_body_in_the_schema_refuses_unknown_properties():
    schema = openapi()
    components = schema["components"]["schemas"]
    bodies = [
        operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        for operations in schema["paths"].values()
        for operation in operations.values()
        if "requestBody" in operation
    ]
    assert len(bodies) == 19  # every write but cancel, which takes no body
    for ref in bodies:
        assert components[ref.rsplit("/", 1)[1]]["additionalProperties"] is False, ref
    assert components["BulkItemRequest"]["additionalProperties"] is False


QUERY_FILTERS = [
    (path, parameter["name"])
    for path, operations in openapi()["paths"].items()
    for parameter in operations.get("get", {}).get("parameters", [])
    if parameter["in"] == "query" and parameter["name"] not in ("limit", "cursor")
]
GOOD_FILTERS = {
    "status": "draft",
    "entityTypeId": "ety_x",
    "workflowId": "wf_x",
    "level": "info",
    "entityId": "ent_x",
    "runId": "run_x",
    "against": "1",
    "regressed": "true",
    "changed": "false",
    "name": "price.ok",
    "key": "sku-1",
}


def list_url(path: str, world) -> str:
    ids = {"{id}": world["finished"].pk, "{workflow_id}": world["workflow"].pk}
    if path.startswith("/api/v1/jobs/"):
        ids["{id}"] = world["finished"].job.pk
    if path.startswith("/api/v1/experiments/"):
        ids["{id}"] = world["experiment"].pk
    if "{version}" in path:
        ids = {"{id}": world["workflow"].pk, "{version}": "1"}
    for placeholder, value in ids.items():
        path = path.replace(placeholder, value)
    return path


def test_every_query_filter_is_tried():
    assert len(QUERY_FILTERS) >= 8


@pytest.mark.parametrize(("path", "name"), QUERY_FILTERS)
def test_an_empty_query_filter_is_a_400_naming_it(api, world, path, name):
    """`?status=` is not "no filter": it would silently answer with everything."""
    url = list_url(path, world)
    good = GOOD_FILTERS[name]
    if name == "status" and "items" in path:
        good = "failed"
    elif name == "status" and path == "/api/v1/reviews":
        good = "pending"
    elif name == "status" and path != "/api/v1/entities":
        good = "completed" if "jobs" in path else "active"
    assert api.get(url, {name: good}).status_code == 200
    response = api.get(url, {name: ""})
    assert response.status_code == 400, response.content
    [detail] = response.json()["error"]["details"]
    assert detail["field"] == name


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"data": "notanobject"}, "data", "Must be an object, not a string."),
        ({"data": ["a"]}, "data", "Must be an object, not an array."),
    ],
)
def test_an_object_given_a_scalar_or_an_array_has_the_code_type(api, world, body, field, message):
    """DRF's own code was `not_a_dict`, which docs/api.md does not list."""
    response = api.post("/api/v1/entities", {"entityTypeId": world["type"].pk, **body})
    [detail] = response.json()["error"]["details"]
    assert (detail["field"], detail["code"], detail["message"]) == (field, "type", message)
