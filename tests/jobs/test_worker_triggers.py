"""Triggers and runs over a filter with a real Celery worker process."""

import time

import pytest
from django.core.cache import cache

from jobs.models import Run, RunItem
from jobs.triggers import QUEUED_KEY
from tests.factories import make_workflow
from tests.workers import wait_for_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
PUBLISH = [{"type": "publish", "config": {}}]


@pytest.fixture(autouse=True)
def no_dispatch_queued():
    cache.delete(QUEUED_KEY)  # one queued by an earlier test would hold this test's back


def _wait_for_runs(workflow, n: int, timeout: float = 60) -> list[Run]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list(Run.objects.filter(workflow=workflow))
        if len(runs) >= n:
            return runs
        time.sleep(0.2)
    raise AssertionError(f"{n} runs of {workflow.pk} did not start within {timeout}s")


def test_a_bulk_create_of_10000_entities_starts_one_run_that_publishes_them_all(
    celery_worker, api, product_type
):
    workflow = make_workflow(product_type, PUBLISH, triggers=[{"on": "entity.created"}])
    items = [{"data": {"title": f"Item {i}", "price": i}} for i in range(10_000)]
    body = {"entityTypeId": product_type.pk, "items": items}
    response = api.post("/api/v1/entities/bulk", body)
    assert response.status_code == 201, response.content
    [run] = _wait_for_runs(workflow, 1)
    run = wait_for_run(run.pk)
    assert (run.status, run.total, run.completed) == ("completed", 10_000, 10_000)
    assert run.trigger["type"] == "entity.created"
    time.sleep(1)  # the run's own publishes made events: they start nothing
    assert Run.objects.filter(workflow=workflow).count() == 1


def test_a_run_over_a_filter_makes_its_items_in_the_worker_and_completes(
    celery_worker, api, product_type, settings
):
    workflow = make_workflow(product_type, PUBLISH)
    items = [{"data": {"title": f"Item {i}", "price": i}} for i in range(1_200)]
    api.post("/api/v1/entities/bulk", {"entityTypeId": product_type.pk, "items": items})
    response = api.post(f"/api/v1/workflows/{workflow.pk}/run", {"filter": {"status": "draft"}})
    assert response.status_code == 202
    run = wait_for_run(response.json()["runId"])
    assert (run.status, run.total, run.completed) == ("completed", 1_200, 1_200)
    assert RunItem.objects.filter(run=run).count() == 1_200
