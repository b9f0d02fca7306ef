"""The served schema says what the server does, as a client generated from it
(openapi-python-client) reads it: a field every response carries is required (else the SDK
types it `X | Unset`), and a field a response may leave out is not; every error status
docs/api.md lists is documented, in the one error shape, on every operation; the headers
a client pages or waits by are declared where they are sent."""

import re

import pytest

from tests.factories import make_entities
from tests.processes import ROOT

API_DOC = (ROOT / "docs" / "api.md").read_text()
pytestmark = pytest.mark.django_db


def component(document, name):
    return document["components"]["schemas"][name]


def test_every_field_a_response_always_carries_is_required(api, world, document):
    """Model fields with a default (`run.status`, `job.type`, `log.level`, ...) came out
    optional: drf-spectacular's rule for a request (may be left out) was the response's too."""
    workflow, finished = world["workflow"], world["finished"]
    served = {
        "Entity": api.get("/api/v1/entities").json(),
        "Workflow": api.get("/api/v1/workflows").json(),
        "WorkflowDetail": [api.get(f"/api/v1/workflows/{workflow.pk}").json()],
        "EntityType": api.get("/api/v1/entity-types").json(),
        "Run": api.get(f"/api/v1/workflows/{workflow.pk}/runs").json(),
        "RunItem": api.get(f"/api/v1/workflows/{workflow.pk}/runs/{finished.pk}/items").json(),
        "Job": api.get("/api/v1/jobs").json(),
        "RunLog": api.get(f"/api/v1/jobs/{finished.job.pk}/logs").json(),
        "Review": api.get("/api/v1/reviews").json(),
        "WorkflowVersion": api.get(f"/api/v1/workflows/{workflow.pk}/versions").json(),
    }
    not_required = {}
    for name, rows in served.items():
        assert rows, name
        always = set.intersection(*(set(row) for row in rows))
        missing = sorted(always - set(component(document, name).get("required", [])))
        if missing:
            not_required[name] = missing
    assert not_required == {}


def test_a_field_a_response_may_leave_out_stays_optional(api, world, document):
    """A trigger names its `cron` only for a schedule, a revision's source its `runId` only
    for a run's change: served without them, they are not required."""
    trigger = api.get(f"/api/v1/workflows/{world['workflow'].pk}/runs").json()[0]["trigger"]
    assert "cron" not in trigger
    assert "cron" not in component(document, "Trigger")["required"]
    assert "runId" not in component(document, "RevisionSource")["required"]


def statuses_of_the_error_table() -> set[str]:
    section = API_DOC.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `\w+` \| (\d{3}) \|", section, re.MULTILINE))


def test_every_status_of_the_error_table_is_documented_on_every_operation(document):
    """406 `not_acceptable`, 500 `server_error` and 503 `request_timeout` were on no
    operation: a generated SDK did not parse them (`parsed` None, or `UnexpectedStatus`)."""
    statuses = statuses_of_the_error_table()
    assert {"406", "500", "503"} <= statuses
    undocumented = {
        f"{method.upper()} {path}": sorted(statuses - set(operation["responses"]))
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if not statuses <= set(operation["responses"])
    }
    assert undocumented == {}


def test_a_406_is_answered_in_the_error_shape_the_schema_documents(api, document):
    response = api.get("/api/v1/entities", HTTP_ACCEPT="application/xml")
    assert response.status_code == 406
    assert response.json()["error"]["code"] == "not_acceptable"
    documented = document["paths"]["/api/v1/entities"]["get"]["responses"]["406"]
    assert documented["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }


def request_body(document, method, path):
    """The operation's requestBody, and the component its JSON body refers to."""
    body = document["paths"][path][method]["requestBody"]
    name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    return body, component(document, name)


def test_an_entity_patch_without_data_is_refused_and_the_schema_requires_data(api, world, document):
    """drf-spectacular made every PATCH body partial (`PatchedEntityUpdateRequest`, nothing
    required): an SDK offered a call without `data`, which the server refuses."""
    response = api.patch(f"/api/v1/entities/{world['ids'][0]}", {})
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert [(d["field"], d["code"]) for d in details] == [("data", "required")]
    body, schema = request_body(document, "patch", "/api/v1/entities/{id}")
    assert body.get("required") is True
    assert schema["required"] == ["data"]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/workflows/{id}", "PatchedWorkflowUpdateRequest"),
        ("/api/v1/entities/{id}", "PatchedEntityUpdateRequest"),
        ("/api/v1/entity-types/{id}", "PatchedEntityTypeWriteRequest"),
    ],
)
def test_a_patch_body_keeps_the_component_name_sdks_were_generated_with(document, path, name):
    """Generated SDKs name their model classes after the components: taking a body whole
    (`data` required) must not rename the class every client imports."""
    body = document["paths"][path]["patch"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == f"#/components/schemas/{name}"


def test_an_entity_type_patch_stays_partial_as_its_view_validates_it(api, world, document):
    response = api.patch(f"/api/v1/entity-types/{world['type'].pk}", {"name": "Renamed"})
    assert response.status_code == 200, response.json()
    body, schema = request_body(document, "patch", "/api/v1/entity-types/{id}")
    assert "required" not in body and "required" not in schema


def test_every_paged_list_documents_its_link_header(api, product_type, document):
    """Lists page through `Link: <...>; rel="next"` only, and no response declared a header:
    an SDK's users could not see how to reach the next page."""
    make_entities(product_type, 2)
    response = api.get("/api/v1/entities?limit=1")
    assert 'rel="next"' in response["Link"]
    paged = {
        path: operations["get"]["responses"]["200"].get("headers", {})
        for path, operations in document["paths"].items()
        if any(p["name"] == "cursor" for p in operations.get("get", {}).get("parameters", []))
    }
    assert "/api/v1/entities" in paged and "/api/v1/workflows/{id}/versions" in paged
    assert [path for path, headers in paged.items() if "Link" not in headers] == []


def test_every_throttled_answer_documents_retry_after(document):
    throttled = [
        operation["responses"]["429"]
        for operations in document["paths"].values()
        for operation in operations.values()
    ]
    assert all("Retry-After" in response["headers"] for response in throttled)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/events", "/api/v1/workflows/{id}/run", "/api/v1/workflows/{id}/estimate"],
)
def test_a_body_refused_when_empty_is_a_required_body(api, world, document, path):
    """No field of these bodies is required alone (`name` and `key`, or `events`;
    `entityIds` or `filter`), so drf-spectacular left the body itself optional."""
    response = api.post(path.format(id=world["workflow"].pk), {})
    assert response.status_code == 400
    assert document["paths"][path]["post"]["requestBody"]["required"] is True


def _bodies(world) -> dict:
    """A body per request list whose bounds the server enforces, with `count` elements."""
    workflow, ids = world["workflow"], world["ids"]
    wf = f"/api/v1/workflows/{workflow.pk}"
    scorer = {"type": "human", "name": "people"}
    step = {"type": "publish", "config": {}}
    return {
        ("RunStartRequest", "entityIds"): (f"{wf}/run", lambda n: {"entityIds": ["x"] * n}),
        ("EstimateRequestRequest", "entityIds"): (
            f"{wf}/estimate",
            lambda n: {"entityIds": ["x"] * n},
        ),
        ("EntityFilterRequest", "ids"): (f"{wf}/run", lambda n: {"filter": {"ids": ["x"] * n}}),
        ("ExperimentStartRequest", "entityIds"): (
            f"{wf}/experiments",
            lambda n: {"candidate": 1, "entityIds": ["x"] * n, "scorers": [scorer]},
        ),
        ("ExperimentStartRequest", "scorers"): (
            f"{wf}/experiments",
            lambda n: {
                "candidate": 1,
                "entityIds": ids,
                "scorers": [{**scorer, "name": f"s{i}"} for i in range(n)],
            },
        ),
        ("ReviewDecideRequest", "ids"): (
            "/api/v1/reviews/decide",
            lambda n: {"ids": ["x"] * n, "decision": "approve"},
        ),
        ("WorkflowCreateRequest", "steps"): (
            "/api/v1/workflows",
            lambda n: {"name": "w", "entityTypeId": world["type"].pk, "steps": [step] * n},
        ),
    }


BOUNDED_LISTS = [
    (("RunStartRequest", "entityIds"), 1, 10_000, "entityIds"),
    (("EstimateRequestRequest", "entityIds"), 1, 10_000, "entityIds"),
    (("EntityFilterRequest", "ids"), 1, 10_000, "filter.ids"),
    (("ExperimentStartRequest", "entityIds"), 1, 10_000, "entityIds"),
    (("ExperimentStartRequest", "scorers"), None, 20, "scorers"),
    (("ReviewDecideRequest", "ids"), 1, 1000, "ids"),
    (("WorkflowCreateRequest", "steps"), 1, 50, "steps"),
]


@pytest.mark.parametrize(("list_", "fewest", "most", "field"), BOUNDED_LISTS)
def test_a_list_s_bounds_are_in_the_schema_as_the_server_enforces_them(
    api, world, document, list_, fewest, most, field
):
    """Run, estimate and experiment `entityIds`, a filter's `ids`, review ids, steps and
    scorers had no `minItems` or `maxItems` (or one of them): a client checking its
    requests against the schema sent lists the server refuses."""
    name, prop = list_
    declared = component(document, name)["properties"][prop]
    assert (declared.get("minItems"), declared.get("maxItems")) == (fewest, most)
    path, body = _bodies(world)[list_]
    for count in [most + 1] + ([fewest - 1] if fewest else []):
        response = api.post(path, body(count))
        assert response.status_code == 400, (count, response.json())
        fields = [d["field"] for d in response.json()["error"]["details"]]
        assert field in fields, (count, response.json())


def test_every_time_in_ms_is_a_64_bit_integer(document):
    """A time in ms since the epoch passes 2^31 in January 1970: a client generated from
    the schema in a language whose `integer` is 32 bits (Java, C#) overflowed reading a
    revision's `publishedAt` (the entity at a version), typed without `int64`."""
    short = [
        f"{name}.{field}"
        for name, schema in document["components"]["schemas"].items()
        for field, prop in (schema.get("properties") or {}).items()
        if field.endswith("At") and prop.get("type") == "integer" and prop.get("format") != "int64"
    ]
    assert short == []


def test_an_experiment_s_status_lists_only_the_statuses_an_experiment_reaches(document):
    """Experiments took the runs' statuses whole, `failed` too, which no experiment reaches
    (one whose entities failed or whose budget ran out ends `completed`, saying why): a
    client generated from the schema handled a status never served."""
    experiment = component(document, "Experiment")["properties"]["status"]
    name = experiment["$ref"].rsplit("/", 1)[1]
    assert component(document, name)["enum"] == ["pending", "running", "completed", "cancelled"]
    assert "failed" in component(document, "RunStatusEnum")["enum"]
