import pytest

from entities.models import Entity
from tests.factories import make_entities, make_entity_type

pytestmark = pytest.mark.django_db


def test_create_and_get_entity(api, product_type):
    response = api.post(
        "/api/v1/entities", {"entityTypeId": product_type.id, "data": {"title": "Lamp", "price": 3}}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "entityTypeId",
        "data",
        "status",
        "version",
        "publishedAt",
        "createdAt",
        "updatedAt",
    }
    assert body["id"].startswith("ent_")
    assert body["entityTypeId"] == product_type.id
    assert body["data"] == {"title": "Lamp", "price": 3}
    assert body["status"] == "draft"
    assert body["version"] == 1
    assert body["publishedAt"] is None
    assert api.get(f"/api/v1/entities/{body['id']}").json() == body


def test_create_entity_breaking_the_schema_names_the_path(api, product_type):
    response = api.post(
        "/api/v1/entities",
        {"entityTypeId": product_type.id, "data": {"title": "x", "seo": {"title": 5}}},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["details"][0]["field"] == "data.seo.title"
    assert "string" in error["details"][0]["message"]
    assert Entity.objects.count() == 0


def test_create_entity_missing_required_field(api, product_type):
    response = api.post("/api/v1/entities", {"entityTypeId": product_type.id, "data": {}})
    assert response.status_code == 400
    assert "'title' is a required property" in response.json()["error"]["message"]


def test_create_entity_of_unknown_type_is_400_naming_the_field(api):
    response = api.post("/api/v1/entities", {"entityTypeId": "ety_nope", "data": {}})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "entityTypeId"


def test_create_entity_with_data_not_an_object(api, product_type):
    response = api.post("/api/v1/entities", {"entityTypeId": product_type.id, "data": [1]})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "data"


def test_patch_merges_top_level_keys_and_bumps_version(api, product_type):
    [entity_id] = make_entities(product_type, 1)
    response = api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": 99, "color": "red"}})
    assert response.status_code == 200
    body = response.json()
    assert body["data"] == {"title": "Item 0", "price": 99, "color": "red"}
    assert body["version"] == 2


def test_patch_breaking_the_schema_changes_nothing(api, product_type):
    [entity_id] = make_entities(product_type, 1)
    response = api.patch(f"/api/v1/entities/{entity_id}", {"data": {"price": -1}})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "data.price"
    entity = Entity.objects.get(pk=entity_id)
    assert entity.data["price"] == 0 and entity.version == 1


def test_list_filters_by_type_and_status(api, product_type):
    other = make_entity_type(schema=None)
    mine = make_entities(product_type, 2)
    make_entities(other, 3)
    Entity.objects.filter(pk=mine[0]).update(status="published")
    rows = api.get(f"/api/v1/entities?entityTypeId={product_type.id}").json()
    assert {row["id"] for row in rows} == set(mine)
    rows = api.get("/api/v1/entities?status=published").json()
    assert [row["id"] for row in rows] == [mine[0]]
    response = api.get("/api/v1/entities?status=bogus")
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "status"


def test_delete_entity(api, product_type):
    [entity_id] = make_entities(product_type, 1)
    assert api.delete(f"/api/v1/entities/{entity_id}").status_code == 204
    assert api.get(f"/api/v1/entities/{entity_id}").status_code == 404


def test_entity_list_makes_a_constant_number_of_queries(
    api, product_type, django_assert_max_num_queries
):
    make_entities(product_type, 120)
    with django_assert_max_num_queries(6):
        response = api.get("/api/v1/entities?limit=100")
    assert len(response.json()) == 100
