"""Cancelling runs that a real worker is executing."""

import time

import pytest

from config.api.errors import Conflict
from jobs.models import Run, RunItem
from jobs.services import run_cancel
from tests.factories import make_entities, make_workflow, start_run
from tests.workers import wait_for_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def _settled(run_id: str, timeout: float = 60) -> Run:
    """Wait until no item is pending or running (in-flight steps have ended)."""
    deadline = time.monotonic() + timeout
    while RunItem.objects.filter(run_id=run_id, status__in=["pending", "running"]).exists():
        assert time.monotonic() < deadline, "items still open"
        time.sleep(0.1)
    return Run.objects.get(pk=run_id)


def test_cancel_during_a_large_run_stops_new_steps(
    celery_worker, api, product_type, receiver, settings
):
    settings.RUN_CHUNK_SIZE = 20
    receiver.delay = 0.2
    workflow = make_workflow(
        product_type,
        [
            {"id": "hook", "type": "notify", "config": {"channel": "webhook", "url": receiver.url}},
            {"id": "pub", "type": "publish", "config": {}},
        ],
    )
    ids = make_entities(product_type, 600)
    run = start_run(workflow, ids)
    deadline = time.monotonic() + 60
    while len(receiver.requests) < 30:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.02)

    response = api.post(f"/api/v1/jobs/{run.job.pk}/cancel")
    cancelled_at = time.time()
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"

    run = _settled(run.pk)
    assert run.status == "cancelled"
    # Workers look twice a second; a send started before they saw it may still arrive.
    late = [r for r in receiver.requests if r.at > cancelled_at + 1.0]
    assert late == []
    assert run.completed + run.failed + run.cancelled == run.total == 600
    assert run.cancelled > 0 and run.failed == 0
    statuses = dict(RunItem.objects.filter(run=run).values_list("entity_id", "status"))
    assert sum(1 for s in statuses.values() if s == "cancelled") == run.cancelled
    # Progress has stopped moving, and the run stays cancelled.
    time.sleep(1)
    again = Run.objects.get(pk=run.pk)
    assert (again.status, again.completed, again.cancelled) == (
        "cancelled",
        run.completed,
        run.cancelled,
    )
    assert api.post(f"/api/v1/jobs/{run.job.pk}/cancel").status_code == 409


def test_cancel_racing_completion_ends_one_way_only(celery_worker, product_type):
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    outcomes = []
    for _ in range(5):
        run = start_run(workflow, make_entities(product_type, 5))
        time.sleep(0.05)
        try:
            run_cancel(run_id=run.pk)
            outcomes.append("cancelled")
        except Conflict:  # the run had already completed: 409 at the API
            outcomes.append("completed")
        _settled(run.pk)
        run = wait_for_run(run.pk)
        assert run.status == outcomes[-1]
        assert run.completed + run.failed + run.cancelled == run.total
        time.sleep(0.3)
        assert Run.objects.get(pk=run.pk).status == outcomes[-1]
