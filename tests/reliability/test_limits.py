"""Limits that hold under abuse: body size, entity size, throttling per key."""

import json

import pytest
from rest_framework.test import APIClient

from entities.models import Entity
from tests.conftest import Api
from tests.factories import make_key

pytestmark = pytest.mark.django_db


def test_an_oversized_body_gets_a_json_413_before_it_is_read(api, settings):
    settings.API_MAX_BODY_BYTES = 2048
    response = api.post("/api/v1/entity-types", {"name": "x" * 5000})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_an_oversized_entity_is_refused_naming_the_field(api, product_type, settings):
    settings.ENTITY_MAX_DATA_BYTES = 1024
    response = api.post(
        "/api/v1/entities", {"entityTypeId": product_type.id, "data": {"title": "x" * 2000}}
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "data"
    assert "the limit is 1024" in response.json()["error"]["message"]
    assert Entity.objects.count() == 0


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/entity-types", {"name": "x" * 201}, "name"),
        ("/api/v1/workflows", {"name": "x" * 201, "entityTypeId": "e", "steps": []}, "name"),
    ],
)
def test_long_strings_are_refused(api, path, body, field):
    response = api.post(path, body)
    assert response.status_code == 400
    assert field in [d["field"] for d in response.json()["error"]["details"]]


def test_a_prompt_longer_than_the_template_limit_is_refused(api, product_type):
    step = {"type": "ai_generate", "config": {"prompt": "x" * 20_001, "outputField": "y"}}
    response = api.post(
        "/api/v1/workflows", {"name": "w", "entityTypeId": product_type.id, "steps": [step]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "steps[0].config.prompt"


def test_requests_are_throttled_per_key_with_retry_after(settings):
    settings.API_RATE_LIMIT = "3/min"
    first, second = Api(make_key()), Api(make_key())
    assert [first.get("/api/v1/entities").status_code for _ in range(3)] == [200] * 3
    response = first.get("/api/v1/entities")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    assert second.get("/api/v1/entities").status_code == 200  # another key, its own budget


@pytest.mark.parametrize(
    ("data", "field", "what"),
    [
        ({"title": "a\u0000b"}, "data.title", "NUL character"),
        ({"tags": ["ok", "x\ud800"]}, "data.tags[1]", "unpaired surrogate"),
        ({"bad\u0000key": 1}, "data.bad\u0000key", "NUL character"),
    ],
)
def test_text_the_database_cannot_store_is_refused_naming_the_field(
    api, product_type, data, field, what
):
    body = json.dumps({"entityTypeId": product_type.id, "data": data})  # escaped as JSON is
    response = APIClient.post(api, "/api/v1/entities", body, content_type="application/json")
    assert response.status_code == 400
    [detail] = response.json()["error"]["details"]
    assert (detail["field"], detail["code"]) == (field, "unstorable")
    assert what in detail["message"]
    assert Entity.objects.count() == 0


def test_text_the_database_cannot_store_is_refused_in_any_body(api, product_type):
    step = {
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "x", "value": "\u0000"}]},
    }
    body = {"name": "w", "entityTypeId": product_type.id, "steps": [step]}
    response = api.post("/api/v1/workflows", body)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "steps[0].config.operations[0].value"


def test_any_other_text_is_stored_as_given(api, product_type):
    data = {"title": "Crème brûlée 😀 \\u0000 \\ud800", "price": 1}  # an emoji; escapes as text
    response = api.post("/api/v1/entities", {"entityTypeId": product_type.id, "data": data})
    assert response.status_code == 201
    assert Entity.objects.get().data["title"] == data["title"]
