"""Triggers and runs over a filter with a real Celery worker process."""

import json
import time

import pytest
from django.core.cache import cache

from config.celery import app
from entities.models import EntityEvent
from jobs import queue
from jobs.models import Run, RunItem
from jobs.triggers import QUEUED_KEY
from tests.factories import make_entities, make_workflow
from tests.workers import start_beat, wait_for_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
PUBLISH = [{"type": "publish", "config": {}}]
SET_TITLE = {
    "type": "transform",
    "config": {"operations": [{"op": "set", "field": "title", "value": "T {{ entity.title }}"}]},
}


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


def _wait_until(predicate, what: str, timeout: float = 60):
    """Poll until `predicate()` is truthy (a bound on waiting, not a speed assertion)."""
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return found


def _items(run) -> list[str]:
    return sorted(RunItem.objects.filter(run=run).values_list("entity_id", flat=True))


@pytest.mark.long
def test_a_bulk_create_of_10000_entities_starts_one_run_that_publishes_them_all(
    celery_worker, api, product_type
):
    workflow = make_workflow(
        product_type,
        [SET_TITLE, *PUBLISH],
        triggers=[{"on": "entity.created"}, {"on": "entity.updated", "fields": ["title"]}],
    )
    items = [{"data": {"title": f"Item {i}", "price": i}} for i in range(10_000)]
    body = {"entityTypeId": product_type.pk, "items": items}
    response = api.post("/api/v1/entities/bulk", body)
    assert response.status_code == 201, response.content
    [run] = _wait_for_runs(workflow, 1)
    run = wait_for_run(run.pk)
    assert (run.status, run.total, run.completed) == ("completed", 10_000, 10_000)
    assert run.trigger["type"] == "entity.created"
    # The run edited every title, which the workflow watches: those events are recorded,
    # taken and dropped (its own changes), never run.
    assert RunItem.objects.filter(run=run).count() == 10_000
    _wait_until(lambda: not EntityEvent.objects.exists(), "the outbox to empty")
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


def test_an_update_of_a_watched_field_starts_a_run_and_an_unrelated_update_does_not(
    celery_worker, api, product_type
):
    watched, other = make_entities(product_type, 2)  # before the workflow: no events
    workflow = make_workflow(
        product_type, PUBLISH, triggers=[{"on": "entity.updated", "fields": ["title"]}]
    )
    assert api.patch(f"/api/v1/entities/{other}", {"data": {"price": 7}}).status_code == 200
    assert api.patch(f"/api/v1/entities/{watched}", {"data": {"title": "New"}}).status_code == 200
    [run] = _wait_for_runs(workflow, 1)
    run = wait_for_run(run.pk)
    assert _items(run) == [watched] and run.trigger["type"] == "entity.updated"
    # Every event was dispatched (the price change matched nothing): no other run comes.
    _wait_until(lambda: not EntityEvent.objects.exists(), "the outbox to empty")
    assert Run.objects.filter(workflow=workflow).count() == 1


def test_a_publish_that_edits_the_watched_field_does_not_start_its_workflow_again(
    celery_worker, api, product_type
):
    [entity_id] = make_entities(product_type, 1)
    workflow = make_workflow(
        product_type,
        [SET_TITLE, *PUBLISH],
        triggers=[{"on": "entity.updated", "fields": ["title"]}],
    )
    assert api.patch(f"/api/v1/entities/{entity_id}", {"data": {"title": "A"}}).status_code == 200
    [run] = _wait_for_runs(workflow, 1)
    run = wait_for_run(run.pk)
    assert run.status == "completed"
    # The run changed `title` and published: its event is taken and dropped, not run.
    _wait_until(lambda: not EntityEvent.objects.exists(), "the outbox to empty")
    assert Run.objects.filter(workflow=workflow).count() == 1
    assert api.get(f"/api/v1/entities/{entity_id}").json()["data"]["title"] == "T A"


def _unacked_dispatches() -> dict[str, str]:
    """The dispatch messages a worker took and never acknowledged: delivery tag -> task id."""
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        found = {}
        for tag, payload in channel.client.hgetall(channel.unacked_key).items():
            headers = json.loads(payload)[0]["headers"]
            if headers["task"] == queue.DISPATCH_TRIGGERS:
                found[tag.decode()] = headers["id"]
        return found


def _redeliver(tags) -> None:
    """Put unacknowledged messages back on the queue, as Redis does once their visibility
    timeout (an hour) has passed."""
    with app.connection_for_write() as connection:
        for tag in tags:
            connection.default_channel.qos.restore_by_tag(tag)


@pytest.mark.long
def test_a_worker_killed_between_the_change_and_the_run_start_loses_no_event(
    celery_worker, api, product_type, tmp_path
):
    """The change commits its outbox row; the worker has taken the dispatch (waiting out
    the debounce window) when it is SIGKILLed, all of it. A new worker and beat's sweep
    start the run; the killed worker's dispatch, delivered again, starts no second one."""
    workflow = make_workflow(product_type, PUBLISH, triggers=[{"on": "entity.created"}])
    log_start = celery_worker.log_size()
    ids = make_entities(product_type, 50)
    _wait_until(
        lambda: f"Task {queue.DISPATCH_TRIGGERS}[" in celery_worker.log_text(log_start),
        "the worker to take the dispatch",
        10,
    )
    celery_worker.kill()  # inside the debounce window: the dispatch has not run
    assert EntityEvent.objects.count() == 1 and not Run.objects.exists()
    killed = _unacked_dispatches()
    assert killed, "the killed worker's dispatch is held unacknowledged by the broker"

    celery_worker.restart()
    beat = start_beat(tmp_path / "beat.log")  # its outbox sweep comes every 15 s
    try:
        [run] = _wait_for_runs(workflow, 1, timeout=60)
        assert "sweep-entity-events" in beat.log_text()
    finally:
        beat.stop()
    _redeliver(killed)
    for task_id in killed.values():
        _wait_until(
            lambda task_id=task_id: f"[{task_id}] succeeded" in celery_worker.log_text(log_start),
            "the redelivered dispatch to run",
        )
    run = wait_for_run(run.pk)
    assert (run.status, run.total, run.completed) == ("completed", 50, 50)
    assert _items(run) == sorted(ids)  # every entity, each once
    assert Run.objects.filter(workflow=workflow).count() == 1  # none doubled
    assert not EntityEvent.objects.exists()


def test_a_title_edited_while_its_run_waits_for_review_is_run_once_the_review_is_decided(
    celery_worker, api, product_type, tmp_path
):
    """The slug is made from the title, after a review. The title is edited again while the
    first edit's run waits for the review: that change is held back (a run would have left
    the entity out, and the slug kept the first title for good), and beat's sweep starts it
    once the review is decided and the first run let the entity go."""
    review = {"id": "check", "type": "review", "config": {"instructions": "Check"}}
    slug = {
        "id": "slug",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
    }
    [entity_id] = make_entities(product_type, 1)
    workflow = make_workflow(
        product_type,
        [review, slug, PUBLISH[0]],
        triggers=[{"on": "entity.updated", "fields": ["title"]}],
    )
    patch = f"/api/v1/entities/{entity_id}"
    assert api.patch(patch, {"data": {"title": "First"}}).status_code == 200
    [first] = _wait_for_runs(workflow, 1)
    _wait_until(lambda: Run.objects.get(pk=first.pk).waiting == 1, "the review to wait")
    assert api.patch(patch, {"data": {"title": "Second"}}).status_code == 200
    _wait_until(
        lambda: EntityEvent.objects.filter(listener_ids=[workflow.pk]).exists(),
        "the second edit to be held back",
    )
    assert Run.objects.filter(workflow=workflow).count() == 1  # no run leaving it out
    beat = start_beat(tmp_path / "beat.log")  # its outbox sweep comes every 15 s
    try:
        [review_id] = [r["id"] for r in api.get("/api/v1/reviews").json()]
        assert api.post(f"/api/v1/reviews/{review_id}/approve").status_code == 200
        assert wait_for_run(first.pk).status == "completed"
        runs = _wait_for_runs(workflow, 2, timeout=90)
        second = max(runs, key=lambda run: (run.created_at, run.pk))
        _wait_until(lambda: Run.objects.get(pk=second.pk).waiting == 1, "its review to wait")
        pending = [r["id"] for r in api.get("/api/v1/reviews").json() if r["status"] == "pending"]
        assert api.post(f"/api/v1/reviews/{pending[0]}/approve").status_code == 200
        assert wait_for_run(second.pk).status == "completed"
    finally:
        beat.stop()
    data = api.get(patch).json()["data"]
    assert (data["title"], data["slug"]) == ("Second", "Second")
    assert _items(second) == [entity_id]
