"""Entities waiting for reviews, with real Celery workers, PostgreSQL and Redis: parked
holding no worker, decided through the API, resumed in a few chunks under fresh leases."""

import json
import os
import signal
from collections import Counter
from datetime import timedelta
from functools import partial

import pytest
from django.utils import timezone

from entities.models import Entity
from jobs.engine.recovery import runs_resume_stalled
from jobs.models import Review, Run, RunItem
from jobs.tasks import tick_waits
from tests.factories import make_entities, make_workflow, start_run
from tests.workers import (
    all_waiting,
    resume_held_by_a_killed_worker,
    wait_for_run,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

TIDY = {
    "id": "tidy",
    "type": "transform",
    "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
}
PUBLISH = {"id": "pub", "type": "publish", "config": {}}


def review(**config) -> dict:
    return {
        "id": "check",
        "type": "review",
        "config": {"instructions": "Check {{ entity.title }}", **config},
    }


wait_until = partial(wait_until, timeout=240)  # 10,000 entities park in one test


def review_ids(run_id: str) -> dict[str, str]:
    return dict(Review.objects.filter(run_id=run_id).values_list("entity_id", "pk"))


def test_ten_thousand_waiting_entities_hold_no_worker_and_resume_in_a_few_chunks(
    celery_worker, api, product_type
):
    ids = make_entities(product_type, 10_000)
    waiting = start_run(make_workflow(product_type, [TIDY, review(), PUBLISH]), ids)
    wait_until(all_waiting(waiting.pk, 10_000), "10,000 entities to wait")

    # Nothing holds the workers: another run goes through at once.
    other_ids = make_entities(product_type, 800)
    other = wait_for_run(start_run(make_workflow(product_type, [TIDY, PUBLISH]), other_ids).pk)
    assert (other.status, other.completed) == ("completed", 800)
    run = Run.objects.get(pk=waiting.pk)
    assert (run.status, run.waiting, run.completed) == ("running", 10_000, 0)
    assert not RunItem.objects.filter(run=run, status__in=["pending", "running"]).exists()
    assert runs_resume_stalled(stalled_after=timedelta(seconds=0)) == 0  # not stalled
    job = api.get(f"/api/v1/jobs/{run.job.pk}").json()
    assert (job["status"], job["progress"]["waiting"]) == ("running", 10_000)

    chunks_before = set(RunItem.objects.filter(run=run).values_list("chunk", flat=True))
    pending = sorted(review_ids(run.pk).values())
    for start in range(0, len(pending), 1000):
        response = api.post(
            "/api/v1/reviews/decide",
            {"ids": pending[start : start + 1000], "decision": "approve"},
        )
        assert response.status_code == 200 and len(response.json()["decided"]) == 1000

    run = wait_for_run(run.pk, timeout=600)
    assert (run.status, run.completed, run.waiting) == ("completed", 10_000, 0)
    assert set(Entity.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"published"}
    resumed = set(RunItem.objects.filter(run=run).values_list("chunk", flat=True))
    # Ten bulk decisions of 1,000: at most one resume per decision, each a few chunks of
    # RUN_CHUNK_SIZE (400), never a task per entity.
    assert not resumed & chunks_before
    assert len(resumed) <= 10 * 3, len(resumed)


def test_each_decision_takes_its_entity_its_own_way(celery_worker, api, product_type):
    ids = make_entities(product_type, 8)  # prices 0..7
    workflow = make_workflow(product_type, [TIDY, review(timeoutMinutes=60), PUBLISH])
    run = start_run(workflow, ids)
    wait_until(all_waiting(run.pk, 8), "8 entities to wait")
    reviews = review_ids(run.pk)
    approve, edit, reject, edited_meanwhile, expire, *bulk = ids

    assert api.post(f"/api/v1/reviews/{reviews[approve]}/approve").status_code == 200
    response = api.post(
        f"/api/v1/reviews/{reviews[edit]}/approve", {"data": {"slug": "hand-made", "price": 99}}
    )
    assert response.status_code == 200, response.json()
    assert (
        api.post(f"/api/v1/reviews/{reviews[reject]}/reject", {"comment": "no"}).status_code == 200
    )
    patched = api.patch(f"/api/v1/entities/{edited_meanwhile}", {"data": {"note": "by hand"}})
    assert patched.status_code == 200
    assert api.post(f"/api/v1/reviews/{reviews[edited_meanwhile]}/approve").status_code == 200
    Review.objects.filter(pk=reviews[expire]).update(expires_at=timezone.now())
    tick_waits.delay()  # what celery beat does every WAITS_TICK_S
    decided = api.post(
        "/api/v1/reviews/decide",
        {"ids": [reviews[entity_id] for entity_id in bulk], "decision": "approve"},
    ).json()
    assert len(decided["decided"]) == 3

    run = wait_for_run(run.pk)
    assert (run.status, run.completed, run.failed, run.waiting) == ("completed", 8, 0, 0)
    entities = {entity.pk: entity for entity in Entity.objects.filter(pk__in=ids)}
    items = dict(RunItem.objects.filter(run=run).values_list("entity_id", "status"))
    for entity_id in [approve, edit, edited_meanwhile, *bulk]:
        assert (items[entity_id], entities[entity_id].status) == ("completed", "published")
    assert entities[approve].data["slug"] == "Item 0"
    assert (entities[edit].data["slug"], entities[edit].data["price"]) == ("hand-made", 99)
    assert entities[edited_meanwhile].data["note"] == "by hand"  # the API edit survived
    assert entities[edited_meanwhile].data["slug"] == "Item 3"
    for entity_id in (reject, expire):  # rejected (one by its timeout): data unchanged
        assert (items[entity_id], entities[entity_id].status) == ("skipped", "draft")
        assert "slug" not in entities[entity_id].data and entities[entity_id].version == 1
    assert Review.objects.get(pk=reviews[expire]).status == "expired"


def test_cancel_ends_the_waiting_entities_and_their_reviews(celery_worker, api, product_type):
    ids = make_entities(product_type, 5)
    run = start_run(make_workflow(product_type, [TIDY, review(), PUBLISH]), ids)
    wait_until(all_waiting(run.pk, 5), "5 entities to wait")
    reviews = review_ids(run.pk)
    assert api.post(f"/api/v1/reviews/{reviews[ids[0]]}/approve").status_code == 200
    body = api.post(f"/api/v1/jobs/{run.job.pk}/cancel").json()
    assert body["status"] == "cancelled"
    assert body["progress"] == {
        "total": 5,
        "completed": 0,
        "failed": 0,
        "cancelled": 5,
        "skipped": 0,
        "waiting": 0,
    }
    # The approval's resume task runs and finds nothing to resume.
    wait_until(lambda: Run.objects.get(pk=run.pk).resume_requested_at is None, "the resume")
    assert set(RunItem.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}
    statuses = Counter(Review.objects.filter(run=run).values_list("status", flat=True))
    assert statuses == {"approved": 1, "cancelled": 4}
    assert not Entity.objects.filter(pk__in=ids, status="published").exists()
    late = api.post(f"/api/v1/reviews/{reviews[ids[1]]}/approve")
    assert late.status_code == 409


def test_a_resumed_chunk_redelivered_after_its_worker_died_repeats_nothing(
    celery_worker, api, product_type, receiver
):
    """SIGKILL the pool processes while they take approved entities on: the chunk is
    delivered again and resumes each entity from its checkpoint (the same decision applies
    again); every entity is published once and notified at least once, a repeat with the
    same `webhook-id`."""
    receiver.delay = 0.05  # slow sends keep the resumed chunk busy for seconds
    hook = {"id": "hook", "type": "notify", "config": {"channel": "webhook", "url": receiver.url}}
    ids = make_entities(product_type, 200)
    run = start_run(make_workflow(product_type, [TIDY, review(), hook, PUBLISH]), ids)
    wait_until(all_waiting(run.pk, 200), "200 entities to wait")
    decided = api.post(
        "/api/v1/reviews/decide",
        {"ids": list(review_ids(run.pk).values()), "decision": "approve"},
    )
    assert len(decided.json()["decided"]) == 200
    wait_until(lambda: len(receiver.requests) >= 30, "the resumed chunk to send")
    victims = celery_worker.child_pids()
    assert victims
    for pid in victims:
        os.kill(pid, signal.SIGKILL)

    run = wait_for_run(run.pk, timeout=240)
    assert (run.status, run.completed, run.failed) == ("completed", 200, 0)
    assert max(RunItem.objects.filter(run=run).values_list("attempts", flat=True)) > 2
    versions = Counter(Entity.objects.filter(pk__in=ids).values_list("version", flat=True))
    assert versions == {2: 200}, versions  # published once
    ids_sent: dict[str, set[str]] = {}
    for request in receiver.requests:
        entity_id = json.loads(request.body)["entity"]["id"]
        ids_sent.setdefault(entity_id, set()).add(request.headers["webhook-id"])
    assert set(ids_sent) == set(ids)  # none lost
    assert all(len(sent) == 1 for sent in ids_sent.values())  # a repeat has the same id


@pytest.mark.long
def test_a_decisions_resume_held_by_a_sigkilled_worker_is_done_by_the_next_ticks(
    api, product_type, tmp_path, settings
):
    """The resume a decision asks for is a countdown message the `waits` worker holds
    unacknowledged: SIGKILLed, that worker takes it out of play for the broker's visibility
    timeout (an hour). Beat's tick of the waits resumes the run once the resume is
    WAIT_RESUME_LEASE_S past its time, as it resolves a delay whose tick was lost."""

    def decide(run):
        decided = api.post(
            "/api/v1/reviews/decide",
            {"ids": list(review_ids(run.pk).values()), "decision": "approve"},
        )
        assert len(decided.json()["decided"]) == 3

    resume_held_by_a_killed_worker(
        lambda: start_run(
            make_workflow(product_type, [TIDY, review(), PUBLISH]), make_entities(product_type, 3)
        ),
        decide,
        settings=settings,
        log_dir=tmp_path,
    )
