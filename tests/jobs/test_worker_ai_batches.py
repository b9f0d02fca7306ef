"""`ai_generate` in batch mode with real Celery workers, PostgreSQL and Redis, on the local
stand-in's batches: entities wait holding no worker, the beat's poll (the task celery beat
runs, sent to the worker) resumes them with their answers at half the price; retries,
failures, cancel and killed workers."""

import os
import signal
import time
from collections import Counter

import pytest

from entities.models import Entity
from jobs.models import AiBatch, AiBatchRequest, AiBatchStatus, Run, RunItem, RunLog
from jobs.tasks import tick_waits
from jobs.waits.ai_batch.services import lease_length
from tests.factories import make_entities, make_workflow, start_run
from tests.workers import (
    PRICED_LOCAL,
    all_waiting,
    start_beat,
    wait_for_run,
    wait_until,
)
from workflows.models import LocalBatch
from workflows.providers import GenerationRequest
from workflows.providers.local import FAILED_MESSAGE, REJECTED_MESSAGE, LocalProvider

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

PROMPT = "Describe {{ entity.title }}"
PUBLISH = {"id": "pub", "type": "publish", "config": {}}


def describe(mode: str, **config) -> dict:
    return {
        "id": "describe",
        "type": "ai_generate",
        "config": {
            "prompt": PROMPT,
            "outputField": "seo.title",
            "model": PRICED_LOCAL,
            "mode": mode,
            **config,
        },
    }


def submitted(run_id: str):
    batches = AiBatch.objects.filter(run_id=run_id)
    return lambda: batches.exists() and not batches.filter(status=AiBatchStatus.PENDING).exists()


def poll_until_ended(run_id: str, timeout: float = 120) -> Run:
    """Send the beat's poll task every half second until the run ends."""
    deadline = time.monotonic() + timeout
    while Run.objects.get(pk=run_id).status in ("pending", "running"):
        assert time.monotonic() < deadline, f"run {run_id} did not end"
        tick_waits.delay()
        time.sleep(0.5)
    return Run.objects.get(pk=run_id)


def test_a_batch_run_waits_holding_no_worker_and_ends_as_sync_at_half_the_cost(
    celery_worker, api, product_type
):
    ids = make_entities(product_type, 30)
    batch_run = start_run(make_workflow(product_type, [describe("batch"), PUBLISH]), ids)
    wait_until(all_waiting(batch_run.pk, 30), "30 entities to wait")
    wait_until(submitted(batch_run.pk), "the batch to be submitted")
    batch = AiBatch.objects.get(run=batch_run)
    assert (batch.status, batch.total, batch.provider, batch.attempt) == (
        "in_progress",
        30,
        "local",
        1,
    )
    assert batch.provider_batch_id == LocalBatch.objects.get(idempotency_key=batch.pk).pk
    # Nothing holds the workers: a sync run of the same entities goes through meanwhile.
    sync_run = wait_for_run(
        start_run(make_workflow(product_type, [describe("sync")]), ids).pk, timeout=120
    )
    assert (sync_run.status, sync_run.completed) == ("completed", 30)
    assert Run.objects.get(pk=batch_run.pk).status == "running"
    assert set(RunItem.objects.filter(run=batch_run).values_list("status", flat=True)) == {
        "waiting"
    }

    run = poll_until_ended(batch_run.pk)
    assert (run.status, run.completed, run.failed, run.waiting) == ("completed", 30, 0, 0)
    entities = Entity.objects.filter(pk__in=ids)
    for entity in entities:
        expected = LocalProvider().generate(
            GenerationRequest(prompt=f"Describe {entity.data['title']}", model=PRICED_LOCAL)
        )
        assert entity.data["seo"]["title"] == expected.text  # the answer sync would give
        assert entity.status == "published"
    # The same tokens as the sync run, at half its cost.
    assert (run.input_tokens, run.output_tokens) == (sync_run.input_tokens, sync_run.output_tokens)
    assert sync_run.cost_nano_usd > 0
    assert run.cost_nano_usd * 2 == sync_run.cost_nano_usd
    batch.refresh_from_db()
    assert (batch.status, batch.completed, batch.failed) == ("ended", 30, 0)
    assert batch.ended_at is not None

    shown = api.get(f"/api/v1/workflows/{run.workflow_id}/runs/{run.pk}").json()
    assert shown["usage"]["costUsd"] == pytest.approx(sync_run.cost_usd / 2)
    assert shown["batches"] == [
        {
            "id": batch.pk,
            "stepId": "describe",
            "provider": "local",
            "model": PRICED_LOCAL,
            "providerBatchId": batch.provider_batch_id,
            "status": "ended",
            "attempt": 1,
            "live": False,
            "counts": {"total": 30, "completed": 30, "failed": 0},
            "error": None,
            "createdAt": int(batch.created_at.timestamp() * 1000),
            "endedAt": int(batch.ended_at.timestamp() * 1000),
        }
    ]
    sync_shown = api.get(f"/api/v1/workflows/{sync_run.workflow_id}/runs/{sync_run.pk}").json()
    assert sync_shown["batches"] == []


def test_failed_and_missing_requests_are_retried_in_batches_then_fail_with_the_message(
    celery_worker, product_type
):
    ok = make_entities(product_type, 2)
    failing = [
        *make_entities(product_type, 8, title="bad [local:fail]"),
        *make_entities(product_type, 1, title="lost [local:drop]"),
    ]
    workflow = make_workflow(product_type, [describe("batch", prompt="{{ entity.title }}")])
    run = start_run(workflow, ok + failing)
    run = poll_until_ended(run.pk)
    assert (run.status, run.completed, run.failed) == ("failed", 2, 9)
    items = {item.entity_id: item for item in RunItem.objects.filter(run=run)}
    for entity_id in failing[:8]:
        assert (items[entity_id].status, items[entity_id].error) == ("failed", FAILED_MESSAGE)
    assert "no result for the request" in items[failing[8]].error
    # AI_MAX_ATTEMPTS (4 in the workers) submissions, each a new batch of the 9 left.
    batches = list(AiBatch.objects.filter(run=run).order_by("attempt"))
    assert [(b.attempt, b.total, b.live) for b in batches] == [
        (1, 11, False),
        (2, 9, False),
        (3, 9, False),
        (4, 9, False),
    ]
    assert Counter(
        AiBatchRequest.objects.filter(batch__run=run).values_list("attempts", flat=True)
    ) == {
        1: 2,
        4: 9,
    }
    retried = RunLog.objects.filter(run=run, message__contains="retrying (attempt 2 of 4)")
    assert retried.count() == 9


def test_a_few_retries_are_answered_live_and_fail_with_the_providers_message(
    celery_worker, product_type
):
    ok = make_entities(product_type, 3)
    failing = make_entities(product_type, 2, title="bad [local:fail]")
    workflow = make_workflow(product_type, [describe("batch", prompt="{{ entity.title }}")])
    run = poll_until_ended(start_run(workflow, ok + failing).pk)
    assert (run.status, run.completed, run.failed) == ("failed", 3, 2)
    batches = list(AiBatch.objects.filter(run=run).order_by("attempt"))
    assert [(b.attempt, b.total, b.live, b.status) for b in batches] == [
        (1, 5, False, "ended"),
        (2, 2, True, "ended"),
    ]
    assert not batches[1].provider_batch_id  # no provider batch for the live retries
    errors = set(RunItem.objects.filter(run=run, status="failed").values_list("error", flat=True))
    assert errors == {FAILED_MESSAGE}


def test_an_invalid_json_answer_is_asked_again_once_with_the_corrective_prompt(
    celery_worker, product_type
):
    ids = make_entities(product_type, 7)
    bad = make_entities(product_type, 6, title="[local:invalid-json]")
    schema = {"type": "object", "required": ["tag"], "properties": {"tag": {"type": "string"}}}
    step = describe(
        "batch",
        prompt="{{ entity.title }}",
        outputField="facts",
        responseFormat="json",
        jsonSchema=schema,
    )
    run = poll_until_ended(start_run(make_workflow(product_type, [step]), ids + bad).pk)
    assert (run.status, run.completed, run.failed) == ("failed", 7, 6)
    entity = Entity.objects.get(pk=ids[0])
    assert set(entity.data["facts"]) == {"tag"}  # the stand-in's answer for the schema
    errors = set(RunItem.objects.filter(run=run, status="failed").values_list("error", flat=True))
    assert len(errors) == 1 and "not valid JSON for the schema after one retry" in errors.pop()
    corrected = AiBatchRequest.objects.filter(batch__run=run, corrected=True)
    assert corrected.count() == 6
    assert all(
        "Your previous answer was not valid" in r.request["request"]["prompt"] for r in corrected
    )
    # One corrective batch (6 > the live retries), then the entities fail.
    assert AiBatch.objects.filter(run=run).count() == 2


def test_cancel_ends_the_waiting_entities_and_cancels_the_providers_batch(
    celery_worker, api, product_type
):
    ids = make_entities(product_type, 5)
    run = start_run(make_workflow(product_type, [describe("batch"), PUBLISH]), ids)
    wait_until(all_waiting(run.pk, 5), "5 entities to wait")
    wait_until(submitted(run.pk), "the batch to be submitted")
    body = api.post(f"/api/v1/jobs/{run.job.pk}/cancel").json()
    assert body["status"] == "cancelled"
    assert body["progress"]["cancelled"] == 5 and body["progress"]["waiting"] == 0
    batch = AiBatch.objects.get(run=run)
    wait_until(
        lambda: AiBatch.objects.get(pk=batch.pk).status == "cancelled", "the batch to cancel"
    )
    assert LocalBatch.objects.get(pk=batch.provider_batch_id).cancelled_at is not None
    time.sleep(1.5)  # the local batch would have ended by now
    tick_waits.delay()
    time.sleep(1)
    assert set(RunItem.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}
    assert not Entity.objects.filter(pk__in=ids, status="published").exists()
    assert AiBatch.objects.get(pk=batch.pk).status == "cancelled"


@pytest.mark.long
def test_workers_killed_while_chunks_park_submit_no_batch_twice_and_lose_no_entity(
    celery_worker, product_type, receiver
):
    """SIGKILL the pool processes while chunks take entities to the batch step (a webhook
    first keeps them busy): redelivered chunks park each entity once, each chunk's batch is
    submitted once, and every entity ends with its answer."""
    receiver.delay = 0.02
    hook = {"id": "hook", "type": "notify", "config": {"channel": "webhook", "url": receiver.url}}
    ids = make_entities(product_type, 1200)
    run = start_run(make_workflow(product_type, [hook, describe("batch"), PUBLISH]), ids)
    wait_until(lambda: len(receiver.requests) >= 100, "the chunks to send")
    for pid in celery_worker.child_pids():
        os.kill(pid, signal.SIGKILL)
    # A kill that catches a submit leaves its batch leased for the lease's length (320 s
    # with the tests' settings), then the rest of the run: on a loaded machine 400 s in all
    # was not enough (it failed so, at a load average of 10 on 2 cores).
    run = poll_until_ended(run.pk, timeout=lease_length().total_seconds() + 400)
    assert (run.status, run.completed, run.failed) == ("completed", 1200, 0)
    assert max(RunItem.objects.filter(run=run).values_list("attempts", flat=True)) > 1
    _assert_each_request_sent_once(run, 1200)
    titles = Counter(
        (e.data["seo"]["title"] == f"{_answer(e.data['title'])}")
        for e in Entity.objects.filter(pk__in=ids)
    )
    assert titles == {True: 1200}


def test_a_batch_left_unsent_or_unrecorded_by_a_dead_worker_is_submitted_once(
    celery_worker, product_type
):
    """The states a worker killed around the submission leaves: the batch recorded but
    never sent (its task lost), or sent but the provider's id never recorded. Either way
    the beat's poll submits it, with the same idempotency key, once."""
    ids = make_entities(product_type, 6)
    run = start_run(make_workflow(product_type, [describe("batch")]), ids)
    wait_until(submitted(run.pk), "the batch to be submitted")
    wait_until(all_waiting(run.pk, 6), "6 entities to wait")
    batch = AiBatch.objects.get(run=run)
    first_id = batch.provider_batch_id
    # Sent, not recorded: the submitter died after the provider accepted the batch.
    AiBatch.objects.filter(pk=batch.pk).update(
        status="pending", provider_batch_id="", lease_until=batch.created_at
    )
    wait_until(
        lambda: (
            (tick_waits.delay() and False) or AiBatch.objects.get(pk=batch.pk).status != "pending"
        ),
        "the poll to submit it",
    )
    assert AiBatch.objects.get(pk=batch.pk).provider_batch_id == first_id
    assert LocalBatch.objects.filter(idempotency_key=batch.pk).count() == 1
    run = poll_until_ended(run.pk)
    assert (run.status, run.completed) == ("completed", 6)
    _assert_each_request_sent_once(run, 6)

    # Recorded, never sent: the chunk's finish committed and its worker died at once.
    more = make_entities(product_type, 4)
    run = start_run(make_workflow(product_type, [describe("batch")]), more)
    wait_until(submitted(run.pk), "the batch to be submitted")
    batch = AiBatch.objects.get(run=run)
    LocalBatch.objects.filter(idempotency_key=batch.pk).delete()
    AiBatch.objects.filter(pk=batch.pk).update(status="pending", provider_batch_id="")
    run = poll_until_ended(run.pk)
    assert (run.status, run.completed) == ("completed", 4)
    _assert_each_request_sent_once(run, 4)


def _answer(title: str) -> str:
    request = GenerationRequest(prompt=f"Describe {title}", model=PRICED_LOCAL)
    return LocalProvider().generate(request).text


def _assert_each_request_sent_once(run: Run, n: int) -> None:
    """Every wait's request is in exactly one of the provider's batches, and every batch
    of the run reached the provider once."""
    batches = list(AiBatch.objects.filter(run=run))
    local = LocalBatch.objects.filter(idempotency_key__in=[b.pk for b in batches])
    assert local.count() == len(batches)
    sent = Counter(entry["customId"] for batch in local for entry in batch.requests)
    assert len(sent) == n and set(sent.values()) == {1}, sent.most_common(3)
    parked = Counter(
        AiBatchRequest.objects.filter(batch__run=run).values_list("wait__item_id", flat=True)
    )
    assert len(parked) == n and set(parked.values()) == {1}


@pytest.fixture
def celery_beat(tmp_path):
    """A real celery beat process, polling the batches every half second."""
    beat = start_beat(tmp_path / "beat.log", AI_BATCH_POLL_S="0.5", WAITS_TICK_S="0.5")
    yield beat
    beat.stop()


def test_celery_beat_polls_the_batch_and_the_run_ends_on_its_own(
    celery_worker, celery_beat, product_type
):
    ids = make_entities(product_type, 12)
    run = start_run(make_workflow(product_type, [describe("batch"), PUBLISH]), ids)
    run = wait_for_run(run.pk, timeout=120)  # nothing sent by the test: the beat did it all
    assert (run.status, run.completed) == ("completed", 12)
    assert AiBatch.objects.get(run=run).status == "ended"
    assert "tick-waits" in celery_beat.log_path.read_text()


def test_a_batch_the_provider_rejects_fails_its_entities_with_the_reason(
    celery_worker, product_type
):
    ids = make_entities(product_type, 3) + make_entities(product_type, 1, title="[local:reject]")
    workflow = make_workflow(product_type, [describe("batch", prompt="{{ entity.title }}")])
    run = poll_until_ended(start_run(workflow, ids).pk)
    assert (run.status, run.completed, run.failed) == ("failed", 0, 4)
    errors = set(RunItem.objects.filter(run=run).values_list("error", flat=True))
    assert errors == {f"local: the batch was rejected: {REJECTED_MESSAGE}"}
    batch = AiBatch.objects.get(run=run)
    assert (batch.status, batch.error) == ("failed", REJECTED_MESSAGE)
    assert not Entity.objects.filter(pk__in=ids, data__has_key="seo").exists()


def test_live_answers_invalid_after_their_retry_are_paid_for_with_the_failure(
    celery_worker, product_type
):
    """Two entities whose answers stay invalid: the corrective requests are few, so answered
    live, and fail again. Every answer was billed: the batch's and both live calls count in
    the entities' usage and the run's spending, as a valid answer's would."""
    bad = make_entities(product_type, 2, title="[local:invalid-json]")
    step = describe(
        "batch", prompt="{{ entity.title }}", outputField="facts", responseFormat="json"
    )
    workflow = make_workflow(product_type, [step])
    run = poll_until_ended(start_run(workflow, bad, budget={"maxTokens": 10**6}).pk)
    assert (run.status, run.failed) == ("failed", 2)
    assert [(b.attempt, b.live) for b in AiBatch.objects.filter(run=run).order_by("attempt")] == [
        (1, False),
        (2, True),
    ]
    items = list(RunItem.objects.filter(run=run))
    assert all("after one retry" in item.error for item in items)
    assert [item.usage["calls"] for item in items] == [3, 3]  # one in the batch, two live
    assert run.input_tokens == sum(item.usage["inputTokens"] for item in items) > 0
    assert run.spent_tokens == run.input_tokens + run.output_tokens
