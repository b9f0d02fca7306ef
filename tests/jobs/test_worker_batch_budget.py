"""A batch-mode run keeps its budget, with real Celery workers, PostgreSQL and Redis on the
local stand-in's batches: each request's estimate is reserved before it is sent, nothing is
sent past the budget, the reservations are replaced by what the answers spent; a retry
inherits what is left of the budget, and concurrent retries of one run start one."""

import threading
from unittest import mock

import pytest
from django.db import connection

from jobs.models import AiBatch, AiBatchRequest, Run, RunItem
from jobs.tasks import tick_waits
from tests.conftest import Api
from tests.factories import make_entities, make_key, make_workflow, start_run
from tests.workers import PRICED_LOCAL, wait_until
from workflows.models import LocalBatch
from workflows.pricing import request_estimate
from workflows.providers import GenerationRequest, provider_get

pytestmark = [pytest.mark.django_db(transaction=True)]

PROMPT = "Describe {{ entity.title }}"


def describe(**config) -> dict:
    return {
        "id": "describe",
        "type": "ai_generate",
        "config": {
            "prompt": PROMPT,
            "outputField": "seo.title",
            "model": PRICED_LOCAL,
            "mode": "batch",
            **config,
        },
    }


def poll_until_ended(run_id: str, timeout: float = 240) -> Run:
    def ended():
        tick_waits.delay()
        return Run.objects.get(pk=run_id).status not in ("pending", "running")

    wait_until(ended, f"run {run_id} to end", timeout=timeout)
    return Run.objects.get(pk=run_id)


def sent(run: Run) -> int:
    """Requests the provider was sent for the run."""
    keys = [str(pk) for pk in AiBatch.objects.filter(run=run).values_list("pk", flat=True)]
    return sum(len(b.requests) for b in LocalBatch.objects.filter(idempotency_key__in=keys))


def estimates(titles: list[str], max_tokens: int) -> list[int]:
    """The tokens reserved for each title's request."""
    provider = provider_get("local")
    return [
        sum(
            request_estimate(
                provider,
                GenerationRequest(
                    prompt=f"Describe {title}", model=PRICED_LOCAL, max_tokens=max_tokens
                ),
                batch=True,
            )[key]
            for key in ("inputTokens", "outputTokens")
        )
        for title in titles
    ]


@pytest.mark.worker
def test_a_batch_run_sends_nothing_past_its_budget_and_its_retry_inherits_what_is_left(
    celery_worker, api, product_type
):
    ids = make_entities(product_type, 2000)
    workflow = make_workflow(product_type, [describe(maxTokens=20)])
    response = api.post(
        f"/api/v1/workflows/{workflow.pk}/run",
        {"entityIds": ids, "budget": {"maxCostUsd": 0.05, "maxTokens": 200}},
    )
    assert response.status_code == 202, response.json()
    run = poll_until_ended(response.json()["runId"])
    reserved = estimates([f"Item {i}" for i in range(2000)], 20)
    estimate = max(reserved)

    # What was reserved and sent fits the budget plus one request's estimate; the rest was
    # never sent.
    assert 1 <= sent(run) <= 200 // min(reserved) + 1
    assert (run.status, run.completed, run.failed) == ("failed", sent(run), 2000 - sent(run))
    errors = set(RunItem.objects.filter(run=run, status="failed").values_list("error", flat=True))
    assert len(errors) == 1 and errors.pop().startswith("Budget reached: maxTokens 200 (spent ")
    # The reservations were replaced by what the answers spent.
    assert run.spent_tokens == run.input_tokens + run.output_tokens <= 200 + estimate
    assert run.spent_cost_nano_usd == run.cost_nano_usd <= 50_000_000
    assert AiBatchRequest.objects.filter(batch__run=run).count() == sent(run)

    # Its retry inherits what is left: 200 tokens minus what the run spent.
    response = api.post(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}/retry", {})
    assert response.status_code == 202, response.json()
    retry = Run.objects.get(pk=response.json()["runId"])
    assert retry.budget_max_tokens == 200 - run.spent_tokens
    assert retry.budget_max_cost_nano_usd == 50_000_000 - run.spent_cost_nano_usd
    retry = poll_until_ended(retry.pk)
    assert retry.total == 2000 - sent(run)
    assert 1 <= sent(retry) < retry.total
    assert retry.spent_tokens <= retry.budget_max_tokens + estimate
    assert run.spent_tokens + retry.spent_tokens <= 200 + 2 * estimate


@pytest.mark.worker
def test_answers_that_spent_past_their_reservations_leave_nothing_for_retries(
    celery_worker, product_type
):
    # A prompt of one-letter words costs the stand-in more tokens than its characters
    # estimate: 3 answers spend 66 tokens where 39 were reserved.
    ok = make_entities(product_type, 3, title=" ".join("x" * 20))
    failing = make_entities(product_type, 3, title="[local:fail]")
    workflow = make_workflow(product_type, [describe(maxTokens=1)])
    run = start_run(workflow, ok + failing, budget={"maxTokens": 60})
    run = poll_until_ended(run.pk)
    assert (run.status, run.completed, run.failed) == ("failed", 3, 3)
    errors = set(RunItem.objects.filter(run=run, status="failed").values_list("error", flat=True))
    assert errors == {"Budget reached: maxTokens 60 (spent 66)"}
    assert AiBatch.objects.filter(run=run).count() == 1  # the failed requests were not sent again
    assert run.spent_tokens == run.input_tokens + run.output_tokens == 66


def test_five_concurrent_retries_of_a_run_start_one(product_type):
    # No chunk is queued: a worker left by another test must not touch these runs.
    with mock.patch("jobs.queue.chunks_enqueue"):
        _five_concurrent_retries(product_type)


def _five_concurrent_retries(product_type):
    workflow = make_workflow(product_type, [describe()])
    ids = make_entities(product_type, 4)
    run = start_run(workflow, ids, budget={"maxTokens": 1000})
    Run.objects.filter(pk=run.pk).update(status="failed", spent_tokens=400)
    RunItem.objects.filter(run=run).update(status="failed")
    key = make_key()
    # The first request of a process reads the API's schema (its query parameters): not
    # part of what is raced here.
    assert Api(key).get(f"/api/v1/workflows/{workflow.pk}/runs").status_code == 200
    barrier = threading.Barrier(5)
    answers = []

    def retry():
        try:
            client = Api(key)
            barrier.wait()
            response = client.post(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}/retry", {})
            answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=retry) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(status for status, _ in answers) == [202, 409, 409, 409, 409]
    retries = Run.objects.filter(retry_of=run)
    assert retries.count() == 1
    started = retries.get()
    assert started.budget_max_tokens == 600
    for status, body in answers:
        if status == 409:
            assert body["error"]["code"] == "already_retried"
            assert started.pk in body["error"]["message"]
    # The retry's retry is how to go on; the run itself is not retried again.
    again = Api(key).post(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}/retry", {})
    assert again.status_code == 409
