"""Cancelling runs that real workers execute: a cancel is asked at once and carried out in
the background; the run ends `cancelled` once no item can move, its counters adding up."""

import os
import signal
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from config.api.errors import Conflict
from entities.models import Entity
from jobs import queue
from jobs.cancel import run_cancel
from jobs.engine.leases import items_claim
from jobs.models import Review, Run, RunItem, Wait
from jobs.tasks import resume_stalled_runs
from tests.factories import make_entities, make_workflow, start_run
from tests.workers import PRICED_LOCAL, all_waiting, wait_for_run, wait_until
from workflows.usage import Usage

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
    settings.RUN_CHUNK_SIZE = settings.RUN_CHUNK_SIZE_MAX = 20  # 20 a chunk, however many
    receiver.delay = 0.2
    receiver.hold_after = 30  # the 31st send and those after it wait until the cancel is asked
    workflow = make_workflow(
        product_type,
        [
            {"id": "hook", "type": "notify", "config": {"channel": "webhook", "url": receiver.url}},
            {"id": "pub", "type": "publish", "config": {}},
        ],
    )
    ids = make_entities(product_type, 600)
    run = start_run(workflow, ids)
    # A worker is mid-send, holding its chunk, as the cancel is asked (asked between two
    # chunks of both processes, the cancel would find none held and end the run at once).
    wait_until(lambda: len(receiver.requests) > 30, "a send held", timeout=60)
    assert RunItem.objects.filter(run=run, status="running").exists()

    response = api.post(f"/api/v1/jobs/{run.job.pk}/cancel")
    cancelled_at = time.time()
    receiver.release.set()
    # Workers hold chunks: the run ends `cancelled` once they have ended their entities.
    assert response.status_code == 202
    assert response.json()["status"] == "running" and response.json()["cancelRequestedAt"]

    run = wait_for_run(_settled(run.pk).pk)
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


REVIEW = {"id": "check", "type": "review", "config": {"instructions": "Check {{ entity.title }}"}}
TIDY = {
    "id": "tidy",
    "type": "transform",
    "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
}
GENERATE = {
    "id": "describe",
    "type": "ai_generate",
    "config": {"prompt": "Describe {{ entity.title }}", "outputField": "seo.title"},
}


def _ended_adding_up(run: Run) -> None:
    """Every item ended, and the counters say so (the invariant of an ended run)."""
    assert run.completed + run.failed + run.cancelled == run.total
    assert not RunItem.objects.filter(
        run_id=run.pk, status__in=["pending", "running", "waiting"]
    ).exists()
    assert run.waiting == 0 and run.started_at and run.completed_at


@pytest.mark.long
def test_cancelling_twenty_thousand_waiting_reviews_answers_at_once_and_ends_them_in_batches(
    celery_worker, api, product_type, django_assert_max_num_queries
):
    """The request asks for the cancel and does one bounded batch (its queries do not grow
    with the run); the worker ends the rest in batches, then the run ends `cancelled`."""
    for _ in range(2):
        make_entities(product_type, 10_000)
    workflow = make_workflow(product_type, [TIDY, REVIEW])
    started = api.post(f"/api/v1/workflows/{workflow.pk}/run", {"filter": {}}).json()
    wait_until(all_waiting(started["runId"], 20_000), "20,000 reviews", timeout=600)

    with django_assert_max_num_queries(40):
        response = api.post(f"/api/v1/jobs/{started['jobId']}/cancel")
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "running" and job["cancelRequestedAt"] is not None
    # Nobody may decide a review of a run being cancelled.
    pending = Review.objects.filter(run_id=started["runId"], status="pending").last()
    decided = api.post(f"/api/v1/reviews/{pending.pk}/approve", {})
    assert decided.status_code == 409

    run = wait_for_run(started["runId"], timeout=300)
    assert (run.status, run.cancelled, run.completed, run.total) == ("cancelled", 20_000, 0, 20_000)
    _ended_adding_up(run)
    assert not Review.objects.filter(run=run).exclude(status="cancelled").exists()
    assert not Wait.objects.filter(run=run).exclude(status="cancelled").exists()
    job = api.get(f"/api/v1/jobs/{started['jobId']}").json()
    assert (job["status"], job["progress"]["cancelled"]) == ("cancelled", 20_000)
    assert api.post(f"/api/v1/jobs/{started['jobId']}/cancel").status_code == 409


def test_a_run_whose_worker_was_killed_mid_chunk_ends_cancelled_with_every_item_counted(
    celery_worker, api, product_type, receiver, settings
):
    """The killed processes' chunks come back to a cancelled run: their items end
    `cancelled` instead of staying `running` forever."""
    settings.RUN_CHUNK_SIZE = settings.RUN_CHUNK_SIZE_MAX = 20  # 20 a chunk, however many
    receiver.delay = 0.1
    workflow = make_workflow(
        product_type,
        [{"id": "hook", "type": "notify", "config": {"channel": "webhook", "url": receiver.url}}],
    )
    run = start_run(workflow, make_entities(product_type, 300))
    wait_until(lambda: len(receiver.requests) >= 10, "the run to send", timeout=60)
    victims = celery_worker.child_pids()
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    response = api.post(f"/api/v1/jobs/{run.job.pk}/cancel")
    assert response.status_code in (200, 202)

    run = wait_for_run(run.pk, timeout=120)
    assert run.status == "cancelled" and run.cancelled > 0
    _ended_adding_up(run)


def test_items_a_dead_delivery_holds_are_taken_over_once_beat_finds_the_cancel_unfinished(
    celery_worker, api, product_type, receiver, settings
):
    """A worker that vanished with its chunk (no redelivery) leaves items `running`: the
    cancel waits for it, and beat's check queues the chunk again once the run showed no
    progress for RUN_CANCEL_TAKEOVER_S; the run then ends `cancelled`, and its callback is
    sent."""
    workflow = make_workflow(product_type, [TIDY])
    with mock.patch("jobs.queue.chunks_enqueue"):  # no worker takes it: the delivery below
        run = start_run(
            workflow, make_entities(product_type, 5), callback_url=receiver.url + "/done"
        )
    items_claim(Run.objects.get(pk=run.pk), 0)  # a delivery that dies holding the chunk

    response = api.post(f"/api/v1/jobs/{run.job.pk}/cancel")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    time.sleep(1)
    assert RunItem.objects.filter(run=run, status="running").count() == 5

    # A minute later, with no progress since: beat's check takes up the cancel.
    ago = timezone.now() - timedelta(seconds=settings.RUN_CANCEL_TAKEOVER_S + 60)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=ago, cancel_requested_at=ago)
    assert resume_stalled_runs() >= 1
    run = wait_for_run(run.pk, timeout=60)
    assert (run.status, run.cancelled) == ("cancelled", 5)
    _ended_adding_up(run)
    assert set(RunItem.objects.filter(run=run).values_list("attempts", flat=True)) == {2}
    sent = wait_until(lambda: receiver.requests, "the callback", timeout=30)
    assert sent[0].json()["status"] == "cancelled"


def test_a_cancelled_run_keeps_what_its_waiting_entities_spent(celery_worker, api, product_type):
    """Waiting entities' model calls count in the run's usage while they wait (as in its
    budget), and the cancel keeps every part of it: tokens, cached tokens, cost."""
    generate = {**GENERATE, "config": {**GENERATE["config"], "model": PRICED_LOCAL}}
    workflow = make_workflow(product_type, [generate, REVIEW])
    run = start_run(workflow, make_entities(product_type, 6), budget={"maxTokens": 10**9})
    wait_until(all_waiting(run.pk, 6), "6 reviews")

    shown = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}").json()["usage"]
    assert shown["inputTokens"] > 0 and shown["outputTokens"] > 0 and shown["costUsd"] > 0
    spent = Run.objects.get(pk=run.pk).spent_tokens
    assert shown["inputTokens"] + shown["outputTokens"] == spent  # what the budget counts

    response = api.post(f"/api/v1/jobs/{run.job.pk}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["usage"] == shown
    run = Run.objects.get(pk=run.pk)
    _ended_adding_up(run)
    items = RunItem.objects.filter(run=run)
    assert Usage.total(Usage.of(item.usage) for item in items) == run.usage


def test_a_filter_run_whose_matches_were_all_deleted_starts_ends_and_calls_back(
    celery_worker, api, product_type, receiver
):
    workflow = make_workflow(product_type, [TIDY])
    ids = make_entities(product_type, 3)
    with mock.patch("jobs.queue.items_make_enqueue"):  # made below, once the matches are gone
        started = api.post(
            f"/api/v1/workflows/{workflow.pk}/run",
            {"filter": {}, "callbackUrl": receiver.url + "/done"},
        ).json()
    Entity.objects.filter(pk__in=ids).delete()
    queue.items_make_enqueue(started["runId"])

    run = wait_for_run(started["runId"])
    assert (run.status, run.total) == ("completed", 0)
    assert run.started_at is not None and run.completed_at >= run.started_at
    sent = wait_until(lambda: receiver.requests, "the callback", timeout=30)
    body = sent[0].json()
    assert (body["id"], body["status"]) == (run.pk, "completed")
    assert body["startedAt"] is not None
