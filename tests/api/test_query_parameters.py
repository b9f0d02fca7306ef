"""Query parameters are taken as the OpenAPI schema declares them, on every endpoint: one the
endpoint does not read is a 400 naming it (`?statuss=draft` does not list everything), next to
good parameters as alone, and nothing is written."""

import pytest

from tests.api.test_strict_input import (
    WRITE_NAMES,
    assert_refused,
    counts,
    openapi,
    send,
    the_write,
)
from tests.conftest import Api
from tests.factories import make_key

pytestmark = pytest.mark.django_db


def reads(world) -> dict[str, tuple[str, dict]]:
    """Every GET operation of the schema: its path, and good parameters for it."""
    type_id, ids, wf = world["type"].pk, world["ids"], world["workflow"].pk
    run, job, review = world["finished"].pk, world["finished"].job.pk, world["reviews"][0]
    experiment = world["experiment"].pk
    return {
        "/api/v1/experiments": ("/api/v1/experiments", {"limit": "1"}),
        "/api/v1/experiments/{id}": (f"/api/v1/experiments/{experiment}", {}),
        "/api/v1/experiments/{id}/results": (
            f"/api/v1/experiments/{experiment}/results",
            {"regressed": "true", "changed": "false"},
        ),
        "/api/v1/entities": ("/api/v1/entities", {"status": "draft", "entityTypeId": type_id}),
        "/api/v1/entities/{id}": (f"/api/v1/entities/{ids[0]}", {}),
        "/api/v1/entities/{id}/revisions": (f"/api/v1/entities/{ids[0]}/revisions", {"limit": "1"}),
        "/api/v1/entities/{id}/revisions/{version}": (
            f"/api/v1/entities/{ids[0]}/revisions/1",
            {},
        ),
        "/api/v1/entity-types": ("/api/v1/entity-types", {"limit": "2"}),
        "/api/v1/events": ("/api/v1/events", {"name": "price.ok", "key": "sku-1"}),
        "/api/v1/entity-types/{id}": (f"/api/v1/entity-types/{type_id}", {}),
        "/api/v1/jobs": ("/api/v1/jobs", {"status": "completed", "workflowId": wf}),
        "/api/v1/jobs/{id}": (f"/api/v1/jobs/{job}", {}),
        "/api/v1/jobs/{id}/logs": (f"/api/v1/jobs/{job}/logs", {"level": "info"}),
        "/api/v1/reviews": ("/api/v1/reviews", {"status": "pending", "entityId": ids[0]}),
        "/api/v1/reviews/{id}": (f"/api/v1/reviews/{review}", {}),
        "/api/v1/step-types": ("/api/v1/step-types", {}),
        "/api/v1/workflows": ("/api/v1/workflows", {"status": "active"}),
        "/api/v1/workflows/{id}": (f"/api/v1/workflows/{wf}", {}),
        "/api/v1/workflows/{id}/versions": (f"/api/v1/workflows/{wf}/versions", {"limit": "1"}),
        "/api/v1/workflows/{id}/versions/{version}": (f"/api/v1/workflows/{wf}/versions/1", {}),
        "/api/v1/workflows/{id}/versions/{version}/diff": (
            f"/api/v1/workflows/{wf}/versions/1/diff",
            {"against": "1"},
        ),
        "/api/v1/workflows/{workflow_id}/runs": (f"/api/v1/workflows/{wf}/runs", {"limit": "1"}),
        "/api/v1/workflows/{workflow_id}/runs/{id}": (f"/api/v1/workflows/{wf}/runs/{run}", {}),
        "/api/v1/workflows/{workflow_id}/runs/{id}/items": (
            f"/api/v1/workflows/{wf}/runs/{run}/items",
            {"status": "failed"},
        ),
    }


READS = [path for path, operations in openapi()["paths"].items() if "get" in operations]


def test_the_reads_are_every_read_operation_of_the_schema(world):
    assert set(reads(world)) == set(READS)


@pytest.mark.parametrize("template", READS)
def test_good_parameters_are_read(api, world, template):
    path, params = reads(world)[template]
    assert api.get(path, params).status_code == 200


@pytest.mark.parametrize("template", READS)
@pytest.mark.parametrize("unknown", ["statuss", "entity_type_id", "page", "offset", "Limit"])
def test_an_unknown_parameter_beside_good_ones_is_a_400_naming_it(api, world, template, unknown):
    path, params = reads(world)[template]
    response = api.get(path, {**params, unknown: "1"})
    assert_refused(response, unknown, "unknown_parameter")
    assert api.head(path, {**params, unknown: "1"}).status_code == 400


def test_a_typo_names_the_parameter_it_was_meant_to_be(api, world):
    error = api.get("/api/v1/entities", {"statuss": "draft"}).json()["error"]
    assert error["details"] == [
        {
            "field": "statuss",
            "message": "Unknown query parameter; did you mean `status`?",
            "code": "unknown_parameter",
        }
    ]
    error = api.get("/api/v1/step-types", {"x": "1", "y": ""}).json()["error"]
    assert [detail["field"] for detail in error["details"]] == ["x", "y"]
    assert "reads none" in error["details"][0]["message"]


@pytest.mark.parametrize("name", WRITE_NAMES)
def test_an_unknown_parameter_on_a_write_is_a_400_and_writes_nothing(api, world, name):
    write = the_write(world, name)
    before = counts()
    response = send(
        api, write.__class__(**{**vars(write), "path": write.path + "?dryRun=1"}), write.body
    )
    assert_refused(response, "dryRun", "unknown_parameter")
    assert counts() == before


def test_format_is_read_everywhere(api, world):
    assert api.get("/api/v1/entities", {"format": "json"}).status_code == 200


def assert_bad_format(response, code: str):
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    [detail] = response.json()["error"]["details"]
    assert (detail["field"], detail["code"]) == ("format", code), detail


@pytest.mark.parametrize("value", ["api", "xml", "yaml", ""])
def test_a_format_the_endpoint_does_not_answer_in_is_a_json_400_naming_the_ones_it_does(
    api, world, value
):
    """DRF's browsable renderer (`?format=api`) answered errors as HTML pages, and re-checked
    a POST's permissions with a GET's query string: `?format=api&limit=10` was a 500. The API
    answers JSON only; any other format is refused in the one error shape."""
    api.raise_request_exception = False
    response = api.get("/api/v1/entities", {"format": value, "limit": "10"})
    assert_bad_format(response, "invalid_choice")
    assert "`json` only" in response.json()["error"]["details"][0]["message"]
    assert_bad_format(api.get("/api/v1/entities/ent_nope", {"format": value}), "invalid_choice")


@pytest.mark.parametrize(
    "path", ["/api/v1/entities", "/api/v1/schema"], ids=["a-list", "the-schema"]
)
def test_a_format_given_twice_is_a_400_repeated_parameter(api, world, path):
    """DRF read the last one: `?format=json&format=yaml` was a 404 on a list."""
    response = api.get(f"{path}?format=json&format=yaml")
    assert_bad_format(response, "repeated_parameter")


def test_the_schema_answers_in_yaml_or_json_and_errors_in_json(api, world):
    assert api.get("/api/v1/schema", {"format": "json"}).json()["openapi"]
    assert api.get("/api/v1/schema", {"format": "yaml"}).content.startswith(b"openapi:")
    response = api.get("/api/v1/schema", {"format": "api"})
    assert_bad_format(response, "invalid_choice")
    assert "`yaml`, `json` only" in response.json()["error"]["details"][0]["message"]


def test_errors_keep_the_json_shape_with_a_format_given(world):
    response = Api().get("/api/v1/entities", {"format": "json"})
    assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"
    response = Api(make_key()).get("/api/v1/entities/ent_nope", {"format": "json"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_a_request_without_a_key_is_a_401_whatever_it_asks(world):
    assert Api().get("/api/v1/entities", {"statuss": "x"}).status_code == 401
    assert Api(make_key(read_only=True)).post("/api/v1/entities?x=1", {}).status_code == 403


def test_concurrent_first_requests_build_the_declared_parameters_once():
    """A threaded worker's first requests arrive together: drf-spectacular's generator must
    not run in two threads at once (it crashed), and every thread gets the one result."""
    from concurrent.futures import ThreadPoolExecutor

    from config.api import query

    query._declared_query_parameters.cache_clear()
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(lambda _: query.declared_query_parameters(), range(5)))
    assert query._declared_query_parameters.cache_info().misses == 1
    assert all(result is results[0] for result in results)
    assert results[0]


def test_a_parameter_given_twice_is_a_400_not_the_last_one_read(api, world):
    response = api.get("/api/v1/entities?status=draft&status=published&limit=5")
    assert_refused(response, "status", "repeated_parameter")
    response = api.get("/api/v1/reviews?status=pending&statuss=x&status=approved")
    assert {(d["field"], d["code"]) for d in response.json()["error"]["details"]} == {
        ("status", "repeated_parameter"),
        ("statuss", "unknown_parameter"),
    }
    assert api.get("/api/v1/entities?status=draft&limit=5").status_code == 200
