"""`delay` steps with real Celery workers, beat, PostgreSQL and Redis: entities parked
holding no worker go on at their time (a tick queued for it, not beat's next one), together,
at beat's next tick when the worker holding their tick is SIGKILLed, while a busy run's
chunks fill the chunks' queue (ticks have a queue and a worker of their own), or end with a
cancel."""

import re
from datetime import timedelta
from functools import partial

import pytest
from django.utils import timezone

from entities.models import Entity
from jobs.models import Run, RunItem, Wait
from jobs.waits.delay.models import Delay
from tests.factories import make_entities, make_workflow, start_run
from tests.workers import (
    all_waiting,
    broker_of_its_own,
    start_beat,
    start_worker,
    wait_for_run,
    wait_until,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

PUBLISH = {"id": "pub", "type": "publish", "config": {}}
wait_until = partial(wait_until, timeout=300)
# A task's result in a worker's log (INFO): what a tick or a resume handled.
TASK_DONE = r"Task jobs\.tasks\.{}\[[^\]]+\] succeeded in [\d.e-]+s: (\d+)"


def delay(**config) -> dict:
    return {"id": "later", "type": "delay", "config": config}


def iso(when) -> str:
    return when.isoformat().replace("+00:00", "Z")


@pytest.mark.long
def test_ten_thousand_delayed_entities_go_on_together_in_a_few_chunks(celery_worker, product_type):
    ids = make_entities(product_type, 10_000)
    # All of them park before it: 10 chunks, a few seconds alone, well under a minute in CI's
    # busiest start (this test is collected first, with the other long ones).
    until = timezone.now() + timedelta(seconds=60)
    run = start_run(make_workflow(product_type, [delay(until=iso(until)), PUBLISH]), ids)
    wait_until(all_waiting(run.pk, 10_000), "10,000 entities to wait")
    assert timezone.now() < until, "parking took longer than the test's margin"
    chunks_before = set(RunItem.objects.filter(run=run).values_list("chunk", flat=True))
    assert Delay.objects.filter(run=run).count() == 10_000

    run = wait_for_run(run.pk, timeout=600)
    assert (run.status, run.completed, run.waiting) == ("completed", 10_000, 0)
    assert set(Entity.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"published"}
    resumed = set(RunItem.objects.filter(run=run).values_list("chunk", flat=True))
    # One time, one resume: chunks of the run's chunk size, never a task per entity.
    assert not resumed & chunks_before
    assert len(resumed) <= 3 * len(chunks_before), (len(resumed), len(chunks_before))
    assert not Delay.objects.filter(run=run).exists()


def test_a_short_delay_goes_on_at_its_time_with_its_output(celery_worker, api, product_type):
    ids = make_entities(product_type, 3)
    after = {
        "id": "note",
        "type": "transform",
        "config": {
            "operations": [{"op": "set", "field": "waited", "value": "{{ steps.later.until }}"}]
        },
    }
    workflow = make_workflow(product_type, [delay(minutes=0.05), after, PUBLISH])
    started = timezone.now()
    run = wait_for_run(start_run(workflow, ids).pk, timeout=120)
    assert (run.status, run.completed) == ("completed", 3)
    assert timezone.now() - started >= timedelta(seconds=3)  # it did wait
    waited = Entity.objects.get(pk=ids[0]).data["waited"]
    assert waited.endswith("Z") and waited > iso(started)
    assert Wait.objects.filter(run=run, kind="delay", status="resolved").count() == 3


def test_a_time_already_past_goes_on_at_once(celery_worker, product_type):
    ids = make_entities(product_type, 2)
    workflow = make_workflow(product_type, [delay(until="1700000000000"), PUBLISH])  # 2023
    run = wait_for_run(start_run(workflow, ids).pk, timeout=120)
    assert (run.status, run.completed) == ("completed", 2)
    assert not Wait.objects.filter(run=run).exists()


@pytest.mark.long
def test_a_delay_goes_on_at_beats_next_tick_when_the_worker_holding_its_tick_is_sigkilled(
    product_type, tmp_path, settings
):
    """The tick queued for the delay's time is a countdown message the worker holds
    unacknowledged: SIGKILLed, it takes the tick with it (for the broker's visibility timeout,
    an hour). Beat's tick, every WAITS_TICK_S (its default, 1 s: not overridden here), resolves
    the delay instead, and that one tick resumes the entities itself (no debounced resume)."""
    assert settings.CELERY_BEAT_SCHEDULE["tick-waits"]["schedule"] == settings.WAITS_TICK_S <= 1
    # Workers and beat on a broker of the test's own: another worker of this test process
    # (the session's) would take beat's ticks, and their counts, from the shared one.
    with broker_of_its_own(settings, tmp_path):
        worker = start_worker(tmp_path / "worker1.log")
        try:
            ids = make_entities(product_type, 4)
            until = timezone.now() + timedelta(seconds=20)
            run = start_run(make_workflow(product_type, [delay(until=iso(until)), PUBLISH]), ids)
            wait_until(all_waiting(run.pk, 4), "4 entities to wait")
            # Its tick is queued for its time, held by this worker.
            assert set(Delay.objects.filter(run=run).values_list("tick_asked", flat=True)) == {True}
        finally:
            worker.kill()
        assert timezone.now() < until, "parking took longer than the test's margin"
        assert Run.objects.get(pk=run.pk).waiting == 4
        beat = start_beat(tmp_path / "beat.log")
        worker = start_worker(tmp_path / "worker2.log")
        try:
            run = wait_for_run(run.pk, timeout=180)
        finally:
            worker.stop()
            beat.stop()
    assert (run.status, run.completed) == ("completed", 4)
    assert all(
        when >= until for when in Wait.objects.filter(run=run).values_list("resolved_at", flat=True)
    )

    log = worker.log_text()
    ticked = [int(n) for n in re.findall(TASK_DONE.format("tick_waits"), log)]
    resumed = [int(n) for n in re.findall(TASK_DONE.format("resume_waits"), log)]
    # One tick of beat's resolved all four (the killed worker's tick never ran) ...
    assert [n for n in ticked if n] == [4], ticked
    # ... and queued them itself: the resume the resolution asked for found nothing left.
    assert sum(resumed) == 0, resumed


@pytest.mark.long
def test_a_delay_goes_on_at_its_time_while_a_busy_runs_chunks_fill_the_queue(
    product_type, receiver, tmp_path, settings
):
    """The Procfile's two workers: one (`-Q celery`) busy with a run of slow webhooks, one
    chunk running and another queued behind it; the other (`-Q waits`) holds the delay's tick.
    The delay goes on, its entities queued again, before any chunk of the busy run ends."""
    receiver.delay = 8.0  # a chunk's sends go out together: each chunk of the busy run takes 8 s
    settings.RUN_CHUNK_SIZE = 5
    hook = {"id": "hook", "type": "notify", "config": {"channel": "webhook", "url": receiver.url}}
    with broker_of_its_own(settings, tmp_path):
        chunks = start_worker(tmp_path / "chunks.log", concurrency=1, queues="celery")
        waits = start_worker(tmp_path / "waits.log", concurrency=1, queues="waits")
        try:
            ids = make_entities(product_type, 3)
            until = timezone.now() + timedelta(seconds=10)
            delayed = start_run(
                make_workflow(product_type, [delay(until=iso(until)), PUBLISH]), ids
            )
            wait_until(all_waiting(delayed.pk, 3), "3 entities to wait")
            wait_until(lambda: timezone.now() >= until - timedelta(seconds=1), "the delay's time")
            busy = start_run(make_workflow(product_type, [hook]), make_entities(product_type, 10))
            assert RunItem.objects.filter(run=busy).values("chunk").distinct().count() == 2
            wait_until(lambda: receiver.requests, "the busy run's first chunk to send")
            delayed = wait_for_run(delayed.pk, timeout=180)
            busy = wait_for_run(busy.pk, timeout=180)
        finally:
            chunks.stop()
            waits.stop()
    assert (delayed.status, delayed.completed, busy.status, busy.completed) == (
        "completed",
        3,
        "completed",
        10,
    )
    resolved = Wait.objects.filter(run=delayed).values_list("resolved_at", flat=True)
    went_on = RunItem.objects.filter(run=delayed).values_list("completed_at", flat=True)
    busy_ended = RunItem.objects.filter(run=busy).values_list("completed_at", flat=True)
    # The delay went on at its time while the busy run's first chunk was still sending ...
    assert max(resolved) < min(busy_ended), (resolved, busy_ended)
    # ... and its entities, queued again then, ran after the chunks queued before them.
    assert min(went_on) >= max(busy_ended)
    ran = "Task jobs.tasks.{}["
    assert ran.format("tick_waits") in waits.log_text()
    assert ran.format("tick_waits") not in chunks.log_text()
    assert ran.format("run_chunk") not in waits.log_text()


def test_cancel_ends_delayed_entities(celery_worker, api, product_type):
    ids = make_entities(product_type, 5)
    workflow = make_workflow(product_type, [delay(minutes=600), PUBLISH])
    run = start_run(workflow, ids)
    wait_until(all_waiting(run.pk, 5), "5 entities to wait")
    assert Delay.objects.filter(run=run).count() == 5
    response = api.post(f"/api/v1/jobs/{run.job.pk}/cancel")
    assert response.status_code in (200, 202), response.json()
    run = wait_for_run(run.pk)
    assert (run.status, run.cancelled, run.waiting) == ("cancelled", 5, 0)
    assert not Delay.objects.filter(run=run).exists()
    assert set(Entity.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"draft"}
