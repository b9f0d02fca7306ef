"""`wait_for_event` steps with real Celery workers, beat, PostgreSQL and Redis: a thousand
entities woken by one bulk send, by events sent before they arrived, once for a repeated id,
by their timeout either way, and by a send whose resuming worker was killed."""

import json
import os
import signal
from collections import Counter
from functools import partial

import pytest

from entities.models import Entity
from jobs.models import Run, RunItem
from jobs.waits.event.models import Event, EventWait
from tests.factories import make_entities, make_workflow, start_run
from tests.workers import (
    all_waiting,
    resume_held_by_a_killed_worker,
    start_beat,
    wait_for_run,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

PUBLISH = {"id": "pub", "type": "publish", "config": {}}
wait_until = partial(wait_until, timeout=300)


def waiting(**config) -> dict:
    return {
        "id": "answer",
        "type": "wait_for_event",
        "config": {"event": "price.approved", "key": "{{ entity.title }}", **config},
    }


def events_for(ids: list[str], **extra) -> list[dict]:
    return [
        {"name": "price.approved", "key": f"Item {n}", "data": {"n": n}, **extra}
        for n in range(len(ids))
    ]


@pytest.fixture
def celery_beat(tmp_path):
    beat = start_beat(tmp_path / "beat.log", WAITS_TICK_S="1")
    yield beat
    beat.stop()


def test_a_thousand_waiting_entities_woken_by_one_bulk_send_and_not_twice_by_its_ids(
    celery_worker, api, product_type
):
    ids = make_entities(product_type, 1000)
    workflow = make_workflow(product_type, [waiting(outputField="approved"), PUBLISH])
    run = start_run(workflow, ids)
    wait_until(all_waiting(run.pk, 1000), "1,000 entities to wait")
    chunks_before = set(RunItem.objects.filter(run=run).values_list("chunk", flat=True))
    events = [{**event, "id": f"approval-{n}"} for n, event in enumerate(events_for(ids))]

    response = api.post("/api/v1/events", {"events": events})
    assert response.status_code == 200, response.json()
    assert response.json()["matched"] == 1000
    again = api.post("/api/v1/events", {"events": events}).json()
    assert again["matched"] == 0 and all(each["duplicate"] for each in again["events"])

    run = wait_for_run(run.pk, timeout=300)
    assert (run.status, run.completed, run.waiting) == ("completed", 1000, 0)
    entities = Entity.objects.filter(pk__in=ids)
    assert Counter(entities.values_list("version", flat=True)) == {2: 1000}  # published once
    assert {e.data["approved"]["n"] for e in entities} == set(range(1000))
    resumed = set(RunItem.objects.filter(run=run).values_list("chunk", flat=True))
    assert not resumed & chunks_before and len(resumed) <= 3 * len(chunks_before)
    assert Event.objects.filter(matched=1).count() == 1000
    assert not EventWait.objects.exists()


def test_events_sent_before_the_entities_arrive_still_wake_them(celery_worker, api, product_type):
    ids = make_entities(product_type, 1000)
    sent = api.post("/api/v1/events", {"events": events_for(ids)}).json()
    assert sent["matched"] == 0  # no one waits yet: each is kept
    run = start_run(make_workflow(product_type, [waiting(), PUBLISH]), ids)
    run = wait_for_run(run.pk, timeout=300)
    assert (run.status, run.completed) == ("completed", 1000)
    assert Event.objects.filter(matched=1).count() == 1000


@pytest.mark.parametrize(("on_timeout", "status"), [("fail", "failed"), ("continue", "completed")])
def test_beat_times_out_the_waits_as_on_timeout_says(
    celery_worker, celery_beat, product_type, on_timeout, status
):
    ids = make_entities(product_type, 20)
    workflow = make_workflow(
        product_type, [waiting(timeoutMinutes=0.05, onTimeout=on_timeout), PUBLISH]
    )
    run = wait_for_run(start_run(workflow, ids).pk, timeout=180)
    assert set(RunItem.objects.filter(run=run).values_list("status", flat=True)) == {status}
    assert Run.objects.get(pk=run.pk).waiting == 0


def test_a_worker_killed_while_resuming_woken_entities_repeats_nothing(
    celery_worker, api, product_type, receiver
):
    receiver.delay = 0.05  # slow sends keep the resumed chunk busy for seconds
    hook = {"id": "hook", "type": "notify", "config": {"channel": "webhook", "url": receiver.url}}
    ids = make_entities(product_type, 200)
    run = start_run(make_workflow(product_type, [waiting(), hook, PUBLISH]), ids)
    wait_until(all_waiting(run.pk, 200), "200 entities to wait")
    assert api.post("/api/v1/events", {"events": events_for(ids)}).json()["matched"] == 200
    wait_until(lambda: len(receiver.requests) >= 30, "the resumed chunk to send")
    for pid in celery_worker.child_pids():
        os.kill(pid, signal.SIGKILL)

    run = wait_for_run(run.pk, timeout=240)
    assert (run.status, run.completed, run.failed) == ("completed", 200, 0)
    versions = Counter(Entity.objects.filter(pk__in=ids).values_list("version", flat=True))
    assert versions == {2: 200}, versions  # published once
    # A send the kill cut short reached the receiver without its body: it was sent again.
    sent = {json.loads(r.body)["entity"]["id"] for r in receiver.requests if r.body}
    assert sent == set(ids)


@pytest.mark.long
def test_an_events_resume_held_by_a_sigkilled_worker_is_done_by_the_next_ticks(
    api, product_type, tmp_path, settings
):
    """As a decision's (tests/jobs/test_worker_reviews.py): the resume an event asks for,
    held by a `waits` worker SIGKILLed, is done by beat's tick of the waits."""
    ids = []

    def start():  # on the test's broker, as everything the entities and the run send
        ids.extend(make_entities(product_type, 3))
        return start_run(make_workflow(product_type, [waiting(), PUBLISH]), ids)

    def send(run):
        response = api.post("/api/v1/events", {"events": events_for(ids)})
        assert response.json()["matched"] == 3, response.json()

    resume_held_by_a_killed_worker(
        start,
        send,
        settings=settings,
        log_dir=tmp_path,
    )
