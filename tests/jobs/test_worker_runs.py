"""Runs executed by a real Celery worker process, on PostgreSQL and Redis."""

import os
import signal
import time
from collections import Counter

import pytest
from django.db import transaction
from standardwebhooks import Webhook

from entities.models import Entity
from jobs.models import RunItem
from tests.factories import make_entities, make_workflow, start_run
from tests.workers import wait_for_run
from workflows.services import workflow_update

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
SECRET = "worker-test-secret"


def _all_six(receiver_url: str) -> list[dict]:
    return [
        {
            "id": "gen",
            "type": "ai_generate",
            "config": {"prompt": "Describe {{ entity.title }}", "outputField": "description"},
        },
        {
            "id": "tidy",
            "type": "transform",
            "config": {
                "operations": [
                    {"op": "set", "field": "slug", "value": "{{ entity.title }}"},
                    {"op": "slugify", "field": "slug"},
                ]
            },
        },
        {
            "id": "cheap",
            "type": "condition",
            "config": {"if": {"field": "price", "operator": "lt", "value": 250}},
        },
        {
            "id": "check",
            "type": "validate",
            "config": {"rules": [{"field": "price", "type": "number", "maximum": 200}]},
        },
        {"id": "pub", "type": "publish", "config": {}},
        {
            "id": "hook",
            "type": "notify",
            "config": {
                "channel": "webhook",
                "url": receiver_url,
                "secret": SECRET,
                "message": "{{ entity.slug }}",
            },
        },
    ]


def test_a_run_over_many_entities_with_all_six_step_types(
    celery_worker, api, product_type, receiver, settings
):
    settings.RUN_CHUNK_SIZE = settings.RUN_CHUNK_SIZE_MAX = 25  # 25 a chunk, however many
    workflow = make_workflow(product_type, _all_six(receiver.url + "/hook"))
    ids = make_entities(product_type, 300)  # prices 0..299
    response = api.post(
        f"/api/v1/workflows/{workflow.pk}/run",
        {"entityIds": ids, "callbackUrl": receiver.url + "/callback"},
    )
    assert response.status_code == 202
    run = wait_for_run(response.json()["runId"])

    # price < 250 goes on; 201..249 break the validate rule; 250.. are stopped (skipped).
    assert run.status == "failed"
    assert (run.total, run.completed, run.failed, run.cancelled) == (300, 251, 49, 0)
    statuses = Counter(RunItem.objects.filter(run=run).values_list("status", flat=True))
    assert statuses == {"completed": 201, "skipped": 50, "failed": 49}
    failed = RunItem.objects.filter(run=run, status="failed").first()
    assert failed.step_id == "check" and "price: must be at most 200" in failed.error
    assert run.input_tokens > 0

    published = Entity.objects.filter(pk__in=ids, status="published")
    assert published.count() == 201
    entity = published.get(data__price=7)
    assert entity.data["slug"] == "item-7" and entity.version == 2
    assert entity.data["description"].startswith("[local stand-in")
    # A failed entity's working copy (description, slug) was discarded.
    assert "slug" not in Entity.objects.get(data__price=230).data

    hooks = [r for r in receiver.requests if r.path == "/hook"]
    assert len(hooks) == 201
    assert len({r.json()["entity"]["id"] for r in hooks}) == 201
    for request in hooks[:5]:
        Webhook(SECRET.encode()).verify(request.body, request.headers)

    deadline = time.monotonic() + 30
    while not [r for r in receiver.requests if r.path == "/callback"]:
        assert time.monotonic() < deadline, "no callback"
        time.sleep(0.1)
    [callback] = [r for r in receiver.requests if r.path == "/callback"]
    body = callback.json()
    assert body["id"] == run.pk and body["status"] == "failed"
    assert body["progress"]["completed"] == 251

    shown = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}").json()
    assert shown["status"] == "failed" and shown["completedAt"] >= shown["startedAt"]


def test_a_run_keeps_the_version_it_started_with(celery_worker, product_type):
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    ids = make_entities(product_type, 10)
    with transaction.atomic():  # the chunks are queued after the edit has committed
        run = start_run(workflow, ids)
        workflow_update(
            workflow_id=workflow.pk, steps=[{"type": "publish", "config": {"status": "draft"}}]
        )
    run = wait_for_run(run.pk)
    assert run.status == "completed"
    assert run.workflow_version.number == 1
    assert set(Entity.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"published"}


@pytest.mark.long
def test_killed_worker_processes_lose_no_webhook_and_repeat_no_publish(
    celery_worker, product_type, receiver, settings
):
    """SIGKILL the pool processes twice mid-run: their chunks are delivered again and resume
    from the items' checkpoints. Every entity ends once and is published once; every webhook
    arrives (at least once: a send cut off by the kill, or not yet checkpointed, is sent
    again), and a repeat carries the same `webhook-id`."""
    settings.RUN_CHUNK_SIZE = settings.RUN_CHUNK_SIZE_MAX = 20  # 20 a chunk, however many
    # Slow sends keep each process inside a chunk nearly all the time (a chunk is ~150 ms of
    # sends, the gap between two chunks a few ms), so the kill lands mid-chunk.
    receiver.delay = 0.05
    workflow = make_workflow(
        product_type,
        [
            {"id": "pub", "type": "publish", "config": {}},
            {
                "id": "hook",
                "type": "notify",
                "config": {"channel": "webhook", "url": receiver.url, "secret": SECRET},
            },
            {
                "id": "mark",
                "type": "transform",
                "config": {"operations": [{"op": "set", "field": "done", "value": True}]},
            },
        ],
    )
    ids = make_entities(product_type, 400)
    run = start_run(workflow, ids)

    killed = 0
    for well_into_the_run in (40, 160):
        deadline = time.monotonic() + 60
        while len(receiver.requests) < well_into_the_run:
            assert time.monotonic() < deadline, "the run did not move"
            time.sleep(0.02)
        victims = celery_worker.child_pids()  # the pool processes, each mid-chunk
        assert victims
        for pid in victims:
            os.kill(pid, signal.SIGKILL)
        killed += len(victims)

    run = wait_for_run(run.pk, timeout=180)
    assert run.status == "completed", (
        RunItem.objects.filter(run=run).exclude(status="completed").values("status", "error")[:5]
    )
    assert (run.completed, run.failed, run.cancelled) == (400, 0, 0)
    attempts = Counter(RunItem.objects.filter(run=run).values_list("attempts", flat=True))
    assert max(attempts) > 1, attempts  # something was redone
    entities = Entity.objects.filter(pk__in=ids)
    # Published exactly once (version 2), then the final commit (version 3).
    versions = Counter(entities.values_list("version", flat=True))
    assert versions == {3: 400}, versions
    assert all(data["done"] for data in entities.values_list("data", flat=True))
    ids_sent: dict[str, set[str]] = {}
    for request in receiver.requests:
        event = Webhook(SECRET.encode()).verify(request.body, request.headers)
        ids_sent.setdefault(event["entity"]["id"], set()).add(request.headers["webhook-id"])
    assert set(ids_sent) == set(ids)  # none lost
    assert all(len(sent) == 1 for sent in ids_sent.values())  # a repeat has the same id
    assert {next(iter(sent)) for sent in ids_sent.values()} == {
        f"{run.pk}.{entity_id}.hook" for entity_id in ids
    }
