"""Batch mode in an experiment on the real Celery workers, against the fake OpenAI and
Anthropic batch endpoints: the candidate's `ai_generate` step in batch mode sends its
requests in provider batches the experiment owns, its sides wait holding no worker, and go
on once the beat's poll finds the batches ended; every entity gets its result at batch
prices, and nothing is written or sent. Cancel mid-batch tells the providers; a budget
stops what would pass it."""

import json
import math
import os
import signal
import time

import pytest

from entities.models import Entity, EntityEvent
from jobs.experiments.models import Experiment, ExperimentSide
from jobs.models import AiBatch, AiBatchStatus, Review, Wait
from jobs.tasks import tick_waits
from tests.factories import make_entities, make_workflow
from tests.servers import Reply, start_llm
from tests.workers import FAKE_ANTHROPIC_PORT, FAKE_LLM_PORT, PRICED_LOCAL, wait_until
from workflows.services import workflow_update
from workflows.usage import Usage

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

ANSWER = "A fine description of the product."


def _steps(provider: str, mode: str, receiver_url: str) -> list[dict]:
    return [
        {
            "id": "gen",
            "type": "ai_generate",
            "config": {
                "prompt": "Describe {{ entity.title }}",
                "outputField": "description",
                "provider": provider,
                "model": PRICED_LOCAL,  # priced by the workers' AI_PRICES
                "mode": mode,
            },
        },
        {"id": "ok", "type": "review", "config": {"instructions": "Check it."}},
        {"id": "pub", "type": "publish", "config": {}},
        {
            "id": "hook",
            "type": "notify",
            "config": {"channel": "webhook", "url": receiver_url, "message": "{{ entity.id }}"},
        },
    ]


def _decide(request):
    content = request["messages"][-1]["content"]
    if "<A>" in (content if isinstance(content, str) else json.dumps(content)):  # a judge
        return Reply(text=json.dumps({"winner": "A", "reason": "first"}))
    return Reply(text=ANSWER, input_tokens=40, output_tokens=10)


@pytest.fixture(params=["openai", "anthropic"])
def provider_fake(request):
    openai, openai_server = start_llm("openai", port=FAKE_LLM_PORT)
    anthropic, anthropic_server = start_llm("anthropic", port=FAKE_ANTHROPIC_PORT)
    for fake in (openai, anthropic):
        fake.record = False
        fake.decide = _decide
    yield request.param, openai if request.param == "openai" else anthropic
    openai_server.shutdown()
    anthropic_server.shutdown()


def _experiment(api, product_type, provider: str, receiver_url: str, n: int, **body):
    ids = make_entities(product_type, n)
    workflow = make_workflow(product_type, _steps(provider, "sync", receiver_url))
    workflow_update(
        workflow_id=workflow.pk, steps=_steps(provider, "batch", receiver_url), draft=True
    )
    answer = api.post(
        f"/api/v1/workflows/{workflow.pk}/experiments",
        {"candidate": 2, "entityIds": ids, **body},
    )
    assert answer.status_code == 202, answer.json()
    return answer.json(), ids


def _polled_until_ended(experiment_id: str, timeout: float = 600) -> Experiment:
    """Send the beat's tick (it polls the batches) until the experiment ends."""

    def ended():
        tick_waits.delay()
        time.sleep(0.4)
        return Experiment.objects.get(pk=experiment_id).is_ended

    wait_until(ended, "the experiment to end", timeout=timeout)
    return Experiment.objects.get(pk=experiment_id)


def test_a_batch_mode_candidate_over_300_entities_completes_at_batch_prices_writing_nothing(
    celery_worker, api, product_type, receiver, provider_fake
):
    provider, fake = provider_fake
    events = EntityEvent.objects.count()
    scorers = [
        {"type": "rules", "name": "said", "rules": [{"field": "description", "minLength": 5}]},
        {
            "type": "judge",
            "name": "judge",
            "mode": "pairwise",
            "instructions": "Describe {{ entity.title }}.",
            "provider": provider,
            "model": PRICED_LOCAL,
        },
    ]
    started, ids = _experiment(api, product_type, provider, receiver.url, 300, scorers=scorers)
    before = {e.pk: (e.data, e.status, e.version) for e in Entity.objects.all()}
    experiment = _polled_until_ended(started["id"])

    read = api.get(f"/api/v1/experiments/{started['id']}").json()
    assert read["status"] == "completed", read
    assert read["progress"] == {"total": 300, "done": 300, "waiting": 0}
    baseline, candidate = read["arms"]["baseline"], read["arms"]["candidate"]
    results = api.get(f"/api/v1/experiments/{started['id']}/results?limit=500").json()
    errors = {r["entityId"]: (r["baseline"]["error"], r["candidate"]["error"]) for r in results}
    assert baseline["completed"] == candidate["completed"] == 300, errors
    # The same tokens, the candidate's at the batch price: half.
    assert candidate["inputTokens"] == baseline["inputTokens"] == 300 * 40
    assert candidate["costUsd"] * 2 == pytest.approx(baseline["costUsd"])
    scores = {score["name"]: score for score in read["scores"]}
    assert scores["said"]["candidate"] == 1.0
    assert scores["judge"]["wins"] + scores["judge"]["losses"] + scores["judge"]["ties"] == 300
    assert sorted(r["entityId"] for r in results) == sorted(ids)
    for result in results:
        side = result["candidate"]
        assert side["outcome"] == "completed" and side["data"]["description"] == ANSWER
        assert {"stepId": "gen", "kind": "ai_batch"} in side["waits"]
    # Its requests went in the provider's batches (one per chunk), none was sent live.
    batches = AiBatch.objects.filter(experiment_id=started["id"])
    assert set(batches.values_list("status", flat=True)) == {AiBatchStatus.ENDED}
    assert (
        batches.count() == len(fake.batches.submissions) == math.ceil(300 / experiment.chunk_size)
    )
    assert sum(len(b.requests) for b in fake.batches.submissions) == 300
    # The experiment's usage: the baseline's live calls, the batches' answers, the judge's.
    job = api.get(f"/api/v1/jobs/{started['jobId']}").json()
    assert job["status"] == "completed"
    assert job["usage"]["inputTokens"] == 300 * (40 + 40 + 11)  # a judge's call: 11
    # Nothing was written or sent, and nothing is left waiting.
    time.sleep(1)  # a stray webhook would have arrived by now
    assert {e.pk: (e.data, e.status, e.version) for e in Entity.objects.all()} == before
    assert EntityEvent.objects.count() == events
    assert receiver.requests == []
    assert not Review.objects.exists() and not Wait.objects.exists()
    assert not ExperimentSide.objects.exists()


def test_cancelling_an_experiment_mid_batch_tells_the_provider(
    celery_worker, api, product_type, receiver, provider_fake
):
    provider, fake = provider_fake
    fake.batches.delay = math.inf  # open until cancelled
    started, _ = _experiment(api, product_type, provider, receiver.url, 60, scorers=[])
    batches = AiBatch.objects.filter(experiment_id=started["id"])
    wait_until(
        lambda: (
            ExperimentSide.objects.filter(experiment_id=started["id"], status="waiting").count()
            == 60
        ),
        "every candidate side to wait",
    )
    wait_until(
        lambda: not batches.filter(status=AiBatchStatus.PENDING).exists(),
        "the batches to be submitted",
    )
    assert Experiment.objects.get(pk=started["id"]).status == "running"
    cancelled = api.post(f"/api/v1/jobs/{started['jobId']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    sent = {b.id for b in fake.batches.submissions}
    wait_until(lambda: sent <= set(fake.batches.cancels), "the provider to be told")
    wait_until(
        lambda: set(batches.values_list("status", flat=True)) == {AiBatchStatus.CANCELLED},
        "the batches to end cancelled",
    )
    experiment = Experiment.objects.get(pk=started["id"])
    assert experiment.status == "cancelled" and not experiment.results.exists()
    assert not ExperimentSide.objects.filter(experiment=experiment).exists()


def test_a_budget_stops_the_batch_requests_past_it(
    celery_worker, api, product_type, receiver, provider_fake
):
    provider, _ = provider_fake
    started, _ = _experiment(
        api,
        product_type,
        provider,
        receiver.url,
        200,
        scorers=[],
        # Past the baseline's live calls (200 x 50 tokens): room for a few batch requests
        # reserved at their estimates (about 300 tokens each).
        budget={"maxTokens": 16000},
    )
    _polled_until_ended(started["id"])
    read = api.get(f"/api/v1/experiments/{started['id']}").json()
    assert read["status"] == "completed" and "Budget reached" in read["error"]
    assert read["arms"]["candidate"]["failed"] > 100
    assert read["arms"]["candidate"]["completed"] > 0  # some were sent before it
    sent = AiBatch.objects.filter(experiment_id=started["id"]).values_list("total", flat=True)
    job = api.get(f"/api/v1/jobs/{started['jobId']}").json()
    used = job["usage"]["inputTokens"] + job["usage"]["outputTokens"]
    # The budget, passed by at most the live calls in flight and one request's estimate.
    assert used < 16000 + 2 * 20 * 50 + 310
    assert sum(sent) < 200


@pytest.fixture
def openai_fake():
    fake, server = start_llm("openai", port=FAKE_LLM_PORT)
    fake.record = False
    yield fake
    server.shutdown()


@pytest.mark.long  # a kill that catches a submit waits out its lease (320 s)
def test_workers_killed_while_sides_park_and_resume_lose_nothing_and_count_nothing_twice(
    celery_worker, api, product_type, openai_fake
):
    """SIGKILL the pool processes while chunks park the candidate's sides, and again while
    the answered sides are continued (a slow live step after the batch step): every entity
    gets its result, each request is sent in one batch once, and the experiment's usage is
    exactly what its results hold."""
    slow = {"delay": 0.01}

    def decide(request):
        if request["messages"][-1]["content"].startswith("Slow"):
            return Reply(text="Noted.", delay=slow["delay"], input_tokens=5, output_tokens=2)
        return Reply(text=ANSWER, input_tokens=40, output_tokens=10)

    openai_fake.decide = decide
    openai_fake.batches.delay = math.inf

    def steps(mode: str) -> list[dict]:
        generate = _steps("openai", mode, "http://127.0.0.1:9/unused")[0]
        note = {
            "id": "note",
            "type": "ai_generate",
            "config": {
                "prompt": "Slow: {{ entity.title }}",
                "outputField": "note",
                "provider": "openai",
                "model": PRICED_LOCAL,
            },
        }
        return [generate, note]

    ids = make_entities(product_type, 400)
    workflow = make_workflow(product_type, steps("sync"))
    workflow_update(workflow_id=workflow.pk, steps=steps("batch"), draft=True)
    started = api.post(
        f"/api/v1/workflows/{workflow.pk}/experiments",
        {"candidate": 2, "entityIds": ids, "scorers": []},
    ).json()
    sides = ExperimentSide.objects.filter(experiment_id=started["id"])
    wait_until(lambda: sides.exists(), "a chunk to park its sides")
    for pid in celery_worker.child_pids():  # chunks are parking
        os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: sides.filter(arm="candidate", status="waiting").count() == 400,
        "every candidate side to wait",
        timeout=300,
    )
    batches = AiBatch.objects.filter(experiment_id=started["id"])
    wait_until(
        lambda: (
            (tick_waits.delay() and False)
            or not batches.filter(status=AiBatchStatus.PENDING).exists()
        ),
        "the batches to be submitted",
        # A submit killed with its process holds the batch's lease to its end: the tick
        # sends it then. The workers' lease (`lease_length` with `worker_env`'s settings:
        # 5 live calls x (1 s x 4 attempts + 60 s of Retry-After)) is 320 s; waiting 120 s
        # from here failed when the kill caught a submit.
        timeout=400,
    )
    slow["delay"] = 0.3
    openai_fake.batches.finish()
    wait_until(
        lambda: (tick_waits.delay() and False) or sides.filter(status="resolved").exists(),
        "a batch to be answered",
    )
    time.sleep(0.5)
    for pid in celery_worker.child_pids():  # answered sides are being continued
        os.kill(pid, signal.SIGKILL)
    slow["delay"] = 0.01
    experiment = _polled_until_ended(started["id"])

    assert experiment.status == "completed" and experiment.results.count() == 400
    results = list(experiment.results.all())
    assert {r.candidate["outcome"] for r in results} == {"completed"}
    assert {r.candidate["data"]["note"] for r in results} == {"Noted."}
    # Each request went in one batch, once.
    sent = [r["custom_id"] for b in openai_fake.batches.submissions for r in b.requests]
    assert len(sent) == len(set(sent)) == 400
    assert batches.count() == len(openai_fake.batches.submissions)
    # The experiment's usage is what its results show: nothing lost, nothing twice.
    shown = [Usage.of(r.baseline["usage"]) + Usage.of(r.candidate["usage"]) for r in results]
    assert experiment.usage == Usage.total(shown)
    assert experiment.input_tokens == 400 * (40 + 5 + 40 + 5)
