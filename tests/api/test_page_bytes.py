"""A list page is bounded in bytes as well as items (API_MAX_PAGE_BYTES): over large entities
a page is cut short, and following its `Link: rel="next"` to the end sees every item once, on
every list that carries entity data or many rows (entities, reviews, runs' items, logs)."""

import json

import pytest

from jobs.models import Run, RunLog
from tests.factories import make_entities, make_workflow, run_inline, start_run

pytestmark = pytest.mark.django_db

BIG = "x" * 20_000  # an entity of about 20 KB


def follow(api, url: str, bound: int) -> tuple[list[dict], int]:
    """Every item of a list, page by page; each page within `bound` bytes unless it holds a
    single item."""
    items, pages = [], 0
    while url:
        response = api.get(url)
        assert response.status_code == 200, response.content
        page = response.json()
        assert len(response.content) <= bound or len(page) == 1
        assert page, "a page with a next link is never empty"
        items += page
        pages += 1
        link = response.get("Link")
        url = link[1 : link.index(">")] if link else None
    return items, pages


def large_entities(product_type, n: int) -> list[str]:
    return make_entities(product_type, n, notes=BIG)


def test_entities_pages_are_cut_by_bytes_and_see_every_entity_once(api, product_type, settings):
    settings.API_MAX_PAGE_BYTES = 70_000  # three entities of 20 KB
    ids = large_entities(product_type, 20)
    items, pages = follow(api, "/api/v1/entities?limit=500", 70_000)
    assert [item["id"] for item in items] == sorted(ids, reverse=True)
    assert pages == 7  # 3 a page


def test_an_item_larger_than_the_bound_is_served_alone(api, product_type, settings):
    settings.API_MAX_PAGE_BYTES = 1024
    ids = large_entities(product_type, 3)
    items, pages = follow(api, f"/api/v1/entities?entityTypeId={product_type.pk}", 1024)
    assert [item["id"] for item in items] == sorted(ids, reverse=True)
    assert pages == 3


def test_the_item_limit_still_holds_under_the_bound(api, product_type):
    ids = make_entities(product_type, 7)
    items, pages = follow(api, "/api/v1/entities?limit=2", 10**6)
    assert len(items) == 7 and pages == 4 and {item["id"] for item in items} == set(ids)


def test_reviews_pages_count_what_they_answer_not_only_their_row(api, product_type, settings):
    # A review answers `proposed`, `current` and `changes` (each near the entity's size):
    # the database's estimate (its row) lets four through, the serialized answer one.
    settings.API_MAX_PAGE_BYTES = 90_000
    ids = large_entities(product_type, 6)
    steps = [
        {
            "id": "tidy",
            "type": "transform",
            "config": {"operations": [{"op": "set", "field": "notes", "value": "y" * 20_000}]},
        },
        {"id": "check", "type": "review", "config": {"instructions": "Ok?"}},
    ]
    run = start_run(make_workflow(product_type, steps), ids)
    run_inline(run.pk)
    items, pages = follow(api, "/api/v1/reviews?limit=500", 90_000)
    assert sorted(item["entityId"] for item in items) == sorted(ids)
    assert len({item["id"] for item in items}) == 6
    assert pages == 6  # about 80 KB each: one a page
    assert json.dumps(items[0]["proposed"]).count("y") == 20_000


def test_run_items_and_logs_pages_are_cut_and_see_everything_once(api, product_type, settings):
    ids = make_entities(product_type, 40)
    workflow = make_workflow(product_type, [{"id": "pub", "type": "publish", "config": {}}])
    run = start_run(workflow, ids)
    run_inline(run.pk)
    run = Run.objects.get(pk=run.pk)
    RunLog.objects.bulk_create(
        RunLog(run=run, level="info", message="m" * 300, entity_id=ids[i % 40]) for i in range(60)
    )
    settings.API_MAX_PAGE_BYTES = 2048
    items, pages = follow(
        api, f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}/items?limit=500", 2048
    )
    assert sorted(item["entityId"] for item in items) == sorted(ids)
    assert pages >= 4  # about 200 bytes an item
    logs, pages = follow(api, f"/api/v1/jobs/{run.job.pk}/logs?limit=500", 2048)
    assert len(logs) == RunLog.objects.filter(run=run).count()
    assert len({log["id"] for log in logs}) == len(logs)
    assert pages > 10
