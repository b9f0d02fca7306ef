"""A JSON number the database cannot store: `1e400` is valid JSON, but Python decodes it as
infinity, which PostgreSQL's jsonb refuses (a write answered 500). The body is refused, naming
the field, before anything is written; `NaN` and `Infinity` are not JSON at all."""

import pytest
from rest_framework.test import APIClient

from entities.models import Entity, EntityRevision, EntityType
from tests.conftest import Api
from tests.factories import make_entities, make_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def raw_api(db):
    api = Api(make_key())
    api.raise_request_exception = False
    return api


def send(api: Api, method: str, path: str, text: str):
    """`text` as the body, unchanged: a number Python's encoder would never write."""
    return getattr(APIClient, method)(api, path, data=text, content_type="application/json")


def assert_refused(response, field: str):
    assert response.status_code == 400, (response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    [detail] = error["details"]
    assert (detail["field"], detail["code"]) == (field, "unstorable"), detail
    assert "not a finite number" in detail["message"]


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1E+999"])
def test_an_entity_number_overflowing_to_infinity_is_a_400_naming_it(raw_api, product_type, number):
    body = f'{{"entityTypeId": "{product_type.pk}", "data": {{"title": "x", "price": {number}}}}}'
    assert_refused(send(raw_api, "post", "/api/v1/entities", body), "data.price")
    assert not Entity.objects.exists()


def test_a_bulk_create_with_one_infinite_number_creates_nothing(raw_api, product_type):
    items = '[{"data": {"title": "a"}}, {"data": {"title": "x", "w": [1, -1e400]}}]'
    body = f'{{"entityTypeId": "{product_type.pk}", "items": {items}}}'
    response = send(raw_api, "post", "/api/v1/entities/bulk", body)
    assert_refused(response, "items[1].data.w[1]")
    assert not Entity.objects.exists()


def test_a_patch_with_an_infinite_number_is_a_400_and_changes_nothing(raw_api, product_type):
    [entity_id] = make_entities(product_type, 1)
    response = send(raw_api, "patch", f"/api/v1/entities/{entity_id}", '{"data": {"w": 1e400}}')
    assert_refused(response, "data.w")
    assert Entity.objects.get(pk=entity_id).version == 1
    assert EntityRevision.objects.filter(entity_id=entity_id).count() == 1


def test_an_entity_type_schema_with_an_infinite_bound_is_a_400(raw_api):
    body = '{"name": "inf", "schema": {"type": "object", "properties": {"p": {"maximum": 1e400}}}}'
    response = send(raw_api, "post", "/api/v1/entity-types", body)
    assert_refused(response, "schema.properties.p.maximum")
    assert not EntityType.objects.filter(name="inf").exists()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_and_are_a_parse_error(raw_api, product_type, literal):
    body = f'{{"entityTypeId": "{product_type.pk}", "data": {{"title": "x", "w": {literal}}}}}'
    response = send(raw_api, "post", "/api/v1/entities", body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_large_finite_numbers_are_stored_as_given(raw_api, product_type):
    body = f'{{"entityTypeId": "{product_type.pk}", "data": {{"title": "x", "w": 1.5e308}}}}'
    response = send(raw_api, "post", "/api/v1/entities", body)
    assert response.status_code == 201, response.content[:300]
    assert float(Entity.objects.get().data["w"]) == 1.5e308  # jsonb keeps it as a numeric
