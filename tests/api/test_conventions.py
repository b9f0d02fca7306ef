import base64
import re

import pytest

from tests.factories import make_entities, make_workflow, start_run

pytestmark = pytest.mark.django_db


def _next_link(response) -> str | None:
    match = re.match(r'<([^>]+)>; rel="next"', response.get("Link", ""))
    return match.group(1) if match else None


def test_list_pages_newest_first_through_link_headers(api, product_type):
    ids = make_entities(product_type, 7)
    seen, url = [], "/api/v1/entities?limit=3"
    while url:
        response = api.get(url)
        assert response.status_code == 200
        assert isinstance(response.json(), list)
        seen += [row["id"] for row in response.json()]
        url = _next_link(response)
    assert seen == list(reversed(ids))


def test_last_page_has_no_link(api, product_type):
    make_entities(product_type, 2)
    response = api.get("/api/v1/entities?limit=2")
    assert len(response.json()) == 2
    assert "Link" not in response


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "limit=abc", "cursor=%%%", "cursor=Zm9v"]
)
def test_bad_paging_parameters_get_400_naming_the_parameter(api, query):
    response = api.get(f"/api/v1/entity-types?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] in {"limit", "cursor"}


@pytest.mark.parametrize("limit", ["²", "٣", "9" * 5000], ids=["superscript", "arabic", "5000"])
def test_a_limit_of_non_ascii_digits_or_thousands_of_digits_is_a_400_not_a_500(api, limit):
    """`str.isdigit()` holds for `²` (which `int()` refuses), for Arabic-Indic digits and for
    a number longer than `int()` converts (4,300 digits): each answered 500."""
    api.raise_request_exception = False
    response = api.get("/api/v1/entity-types", {"limit": limit})
    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"][0]["field"] == "limit"


def test_malformed_json_gets_400_parse_error(api):
    response = api.generic("POST", "/api/v1/entity-types", "{not json", "application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_wrong_types_get_per_field_details(api):
    response = api.post("/api/v1/entity-types", {"name": ["x"], "schema": "nope"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert {d["field"] for d in error["details"]} == {"name", "schema"}


def test_unknown_api_path_answers_json_404(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_unknown_id_answers_json_404(api):
    response = api.get("/api/v1/entities/ent_missing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_schema_and_docs_are_served_without_internet(api, client):
    schema = api.get("/api/v1/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/entities/bulk" in schema.json()["paths"]
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn" not in html.lower() and "https://" not in html


def test_healthz_reports_database_and_broker(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}


@pytest.fixture
def broker_down(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1


def test_healthz_is_503_when_the_broker_is_down(client, broker_down):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"] == "ok"
    assert body["broker"].startswith("error")


def test_healthz_names_a_failures_kind_not_the_hosts_it_could_not_reach(client, broker_down):
    """/healthz takes no key: the broker's error said where it is (`127.0.0.1:1`), as the
    database's names its host, port and user; those go to the log."""
    body = client.get("/healthz").json()
    assert body["broker"] == "error: OperationalError", body


def test_an_id_cursor_on_a_list_keyed_by_number_is_400(api, product_type):
    run = start_run(
        make_workflow(product_type, [{"type": "publish", "config": {}}]),
        make_entities(product_type, 1),
    )
    cursor = base64.urlsafe_b64encode(b"ent_" + b"0" * 26).decode().rstrip("=")
    response = api.get(f"/api/v1/jobs/{run.job.pk}/logs?cursor={cursor}")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "cursor"
