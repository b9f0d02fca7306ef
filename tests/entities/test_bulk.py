import pytest

from entities.models import Entity

pytestmark = pytest.mark.django_db


def test_bulk_creates_ten_thousand_in_order(api, product_type, django_assert_max_num_queries):
    items = [{"data": {"title": f"Item {i}", "price": i}} for i in range(10_000)]
    # Bulk INSERTs in batches, not a save per item: a handful of queries for 10,000 rows.
    with django_assert_max_num_queries(25):
        response = api.post(
            "/api/v1/entities/bulk", {"entityTypeId": product_type.id, "items": items}
        )
    assert response.status_code == 201
    ids = response.json()["ids"]
    assert len(ids) == 10_000 == len(set(ids))
    stored = dict(Entity.objects.filter(pk__in=ids[:3] + ids[-1:]).values_list("pk", "data"))
    assert stored[ids[0]]["title"] == "Item 0"
    assert stored[ids[-1]]["title"] == "Item 9999"


def test_bulk_rejects_everything_when_any_item_is_invalid(api, product_type):
    items = [{"data": {"title": f"Item {i}"}} for i in range(100)]
    items[17] = {"data": {"price": 1}}
    items[42] = {"data": {"title": "x", "price": "free"}}
    response = api.post("/api/v1/entities/bulk", {"entityTypeId": product_type.id, "items": items})
    assert response.status_code == 400
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert fields == ["items[17].data", "items[42].data.price"]
    assert "2 of 100 items are invalid" in response.json()["error"]["message"]
    assert Entity.objects.count() == 0


def test_bulk_item_without_data_object_is_named(api, product_type):
    response = api.post(
        "/api/v1/entities/bulk", {"entityTypeId": product_type.id, "items": [{"data": 3}]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "items[0].data"


@pytest.mark.parametrize("count", [0, 10_001])
def test_bulk_refuses_empty_or_oversized_requests(api, product_type, count):
    items = [{"data": {"title": "x"}}] * count
    response = api.post("/api/v1/entities/bulk", {"entityTypeId": product_type.id, "items": items})
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["field"] == "items"
    assert Entity.objects.count() == 0


def test_bulk_with_idempotency_key_creates_once(api, product_type):
    body = {"entityTypeId": product_type.id, "items": [{"data": {"title": "a"}}]}
    first = api.post("/api/v1/entities/bulk", body, HTTP_IDEMPOTENCY_KEY="k1")
    again = api.post("/api/v1/entities/bulk", body, HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert Entity.objects.count() == 1
    other = api.post(
        "/api/v1/entities/bulk",
        {**body, "items": [{"data": {"title": "b"}}]},
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
