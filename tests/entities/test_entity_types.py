import pytest

from tests.factories import PRODUCT_SCHEMA, make_entities, make_workflow

pytestmark = pytest.mark.django_db


def test_create_get_list_entity_type(api):
    response = api.post(
        "/api/v1/entity-types",
        {"name": "article", "description": "Blog posts", "schema": PRODUCT_SCHEMA},
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "description", "schema", "createdAt", "updatedAt"}
    assert body["id"].startswith("ety_")
    assert isinstance(body["createdAt"], int) and body["createdAt"] > 1_600_000_000_000
    assert api.get(f"/api/v1/entity-types/{body['id']}").json() == body
    assert [row["id"] for row in api.get("/api/v1/entity-types").json()] == [body["id"]]


def test_create_entity_type_without_schema(api):
    response = api.post("/api/v1/entity-types", {"name": "note"})
    assert response.status_code == 201
    assert response.json()["schema"] is None
    assert response.json()["description"] == ""


def test_create_entity_type_with_invalid_schema_names_the_path(api):
    response = api.post(
        "/api/v1/entity-types", {"name": "bad", "schema": {"properties": {"a": {"type": 12}}}}
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"].startswith("schema")


def test_entity_type_name_is_unique(api, product_type):
    response = api.post("/api/v1/entity-types", {"name": product_type.name})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "name"


def test_missing_name_is_400(api):
    response = api.post("/api/v1/entity-types", {"description": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "name"


def test_patch_entity_type(api, product_type):
    response = api.patch(
        f"/api/v1/entity-types/{product_type.id}", {"description": "new", "schema": None}
    )
    assert response.status_code == 200
    assert response.json()["description"] == "new"
    assert response.json()["schema"] is None
    assert response.json()["name"] == product_type.name


def test_put_is_not_allowed(api, product_type):
    response = api.put(f"/api/v1/entity-types/{product_type.id}", {"name": "x"}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_delete_unused_entity_type(api, product_type):
    assert api.delete(f"/api/v1/entity-types/{product_type.id}").status_code == 204
    assert api.get(f"/api/v1/entity-types/{product_type.id}").status_code == 404


def test_delete_entity_type_in_use_is_409(api, product_type):
    make_entities(product_type, 1)
    response = api.delete(f"/api/v1/entity-types/{product_type.id}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "in_use"
    assert api.get(f"/api/v1/entity-types/{product_type.id}").status_code == 200


def test_delete_entity_type_used_by_workflows_is_409_naming_them(api, product_type):
    kept = make_workflow(product_type, [{"type": "publish", "config": {}}], name="Kept")
    archived = make_workflow(product_type, [{"type": "publish", "config": {}}], name="Old")
    assert api.delete(f"/api/v1/workflows/{archived.pk}").status_code == 200
    response = api.delete(f"/api/v1/entity-types/{product_type.id}")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "in_use"
    assert f"Kept ({kept.pk})" in error["message"]
    assert f"Old ({archived.pk})" in error["message"]
    assert [detail["field"] for detail in error["details"]] == ["workflows"]
    assert api.get(f"/api/v1/entity-types/{product_type.id}").status_code == 200


def test_delete_entity_type_with_many_entities_names_a_few(api, product_type):
    ids = make_entities(product_type, 12)
    error = api.delete(f"/api/v1/entity-types/{product_type.id}").json()["error"]
    assert error["code"] == "in_use"
    assert [detail["field"] for detail in error["details"]] == ["entities"]
    assert error["details"][0]["message"].endswith("and more")
    assert sum(entity_id in error["message"] for entity_id in ids) == 10
