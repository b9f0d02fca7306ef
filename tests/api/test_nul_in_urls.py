"""`%00` in a URL decodes to NUL, which PostgreSQL refuses in any query argument: it was a
500 on every detail route. Now a path holding one is a JSON 404 (no resource has such an
id) and a query parameter holding one a JSON 400 naming it, on every operation."""

import re

import pytest
from drf_spectacular.generators import SchemaGenerator

from jobs.experiments.services import experiment_start
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
OPERATIONS = [
    (method, path, operation)
    for path, operations in SCHEMA["paths"].items()
    for method, operation in operations.items()
]
WITH_PATH_IDS = [(m, p) for m, p, op in OPERATIONS if "{" in p]
WITH_QUERY = [
    (m, p, parameter["name"])
    for m, p, op in OPERATIONS
    for parameter in op.get("parameters", [])
    if parameter["in"] == "query"
]
NUL_IDS = ["%00", "ent_01%00", "%00%00", "x%00y"]


@pytest.fixture
def ids(product_type):
    [entity] = make_entities(product_type, 1)
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    run = start_run(workflow, [entity])
    reviewed = make_workflow(
        product_type, [{"id": "check", "type": "review", "config": {"instructions": "Ok?"}}]
    )
    waiting = start_run(reviewed, [entity])
    run_inline(waiting.pk)
    version = workflow.versions.get()
    experiment = experiment_start(
        workflow=workflow, baseline=version, candidate=version, scorers=[], entity_ids=[entity]
    )
    return {
        "experiments": experiment.pk,
        "entity-types": product_type.pk,
        "entities": entity,
        "workflows": workflow.pk,
        "runs": run.pk,
        "jobs": run.job.pk,
        "reviews": waiting.reviews.get().pk,
        "revisions": "1",  # an entity's version
        "versions": "1",  # a workflow's version
    }


def real_path(path: str, ids: dict, nul_in: str | None = None, nul: str = "%00") -> str:
    """`path` with each `{param}` replaced by a real id of its collection (or `nul`)."""

    def fill(match):
        collection = path[: match.start()].rstrip("/").rsplit("/", 1)[1]
        return nul if match.group(1) == nul_in else ids[collection]

    return re.sub(r"\{(\w+)\}", fill, path)


def call(api, method: str, url: str):
    if method in ("post", "patch"):
        return getattr(api, method)(url, {})
    return getattr(api, method)(url)


def assert_error(response, status: int, code: str):
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "details"}
    return error


def test_every_path_and_query_parameter_is_tried():
    assert len(WITH_PATH_IDS) >= 15
    assert len(WITH_QUERY) >= 15


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p in WITH_PATH_IDS if m == "get"])
def test_real_ids_are_found(api, ids, method, path):
    assert call(api, method, real_path(path, ids)).status_code == 200


@pytest.mark.parametrize(("method", "path"), WITH_PATH_IDS)
@pytest.mark.parametrize("nul", NUL_IDS)
def test_a_nul_in_any_path_id_is_a_json_404(api, ids, method, path, nul):
    for param in re.findall(r"\{(\w+)\}", path):
        response = call(api, method, real_path(path, ids, nul_in=param, nul=nul))
        error = assert_error(response, 404, "not_found")
        assert "NUL" in error["message"]


@pytest.mark.parametrize(("method", "path", "name"), WITH_QUERY)
@pytest.mark.parametrize("value", ["%00", "active%00", "%00x%00"])
def test_a_nul_in_any_query_parameter_is_a_json_400_naming_it(api, ids, method, path, name, value):
    response = call(api, method, f"{real_path(path, ids)}?{name}={value}")
    error = assert_error(response, 400, "validation_error")
    assert error["details"] == [
        {
            "field": name,
            "message": "Contains a NUL character (\\u0000), which cannot be stored.",
            "code": "unstorable",
        }
    ]


def test_a_nul_in_a_query_parameter_name_is_a_json_400(api):
    assert_error(api.get("/api/v1/entities?status%00=draft"), 400, "validation_error")


@pytest.mark.parametrize(
    "url", ["/admin/entities/entity/%00/change/", "/api/docs%00", "/healthz%00", "/%00"]
)
def test_a_nul_outside_the_api_is_a_json_404_too(client, url):
    assert_error(client.get(url), 404, "not_found")
