"""An experiment executed by the real Celery worker, against the fake OpenAI-compatible and
Anthropic servers: both versions run over 500 entities with rules, two pairwise judges (one
per provider) and a human scorer, and leave every entity, the webhook receiver and the
entities' event outbox untouched; the judges' A/B order is mapped back."""

import json
import time

import pytest

from entities.models import Entity, EntityEvent
from jobs.experiments.models import Experiment
from jobs.models import Review, Wait
from tests.factories import make_entities, make_workflow
from tests.servers import Reply, start_llm
from tests.workers import FAKE_ANTHROPIC_PORT, FAKE_LLM_PORT, wait_until
from workflows.services import workflow_update

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]
N = 500


def _steps(prompt: str, receiver_url: str) -> list[dict]:
    return [
        {
            "id": "gen",
            "type": "ai_generate",
            "config": {"prompt": prompt, "outputField": "description", "provider": "openai"},
        },
        {"id": "ok", "type": "review", "config": {"instructions": "Check it."}},
        {"id": "pub", "type": "publish", "config": {}},
        {
            "id": "hook",
            "type": "notify",
            "config": {"channel": "webhook", "url": receiver_url, "message": "{{ entity.id }}"},
        },
    ]


@pytest.fixture
def fakes():
    openai, openai_server = start_llm("openai", port=FAKE_LLM_PORT)
    anthropic, anthropic_server = start_llm("anthropic", port=FAKE_ANTHROPIC_PORT)
    openai.record = anthropic.record = False

    def longer_wins(request):
        prompt = request["messages"][-1]["content"]
        if "<A>" in prompt:  # judging: the longer side wins
            a = prompt.split("<A>")[1].split("</A>")[0]
            b = prompt.split("<B>")[1].split("</B>")[0]
            return Reply(
                text=json.dumps({"winner": "A" if len(a) > len(b) else "B", "reason": "longer"})
            )
        if prompt.startswith("LONG"):
            return Reply(text="A much longer and more detailed description of the product.")
        return Reply(text="Short one.")

    openai.decide = longer_wins
    anthropic.default = Reply(text=json.dumps({"winner": "A", "reason": "first"}))
    yield openai, anthropic
    openai_server.shutdown()
    anthropic_server.shutdown()


def test_an_experiment_of_500_entities_writes_nothing_and_maps_the_judges_back(
    celery_worker, api, product_type, receiver, fakes
):
    ids = make_entities(product_type, N)
    workflow = make_workflow(product_type, _steps("Short: {{ entity.title }}", receiver.url))
    workflow_update(
        workflow_id=workflow.pk,
        steps=_steps("LONG: {{ entity.title }}", receiver.url),
        draft=True,
    )
    before = {e.pk: (e.data, e.status, e.version) for e in Entity.objects.all()}
    events = EntityEvent.objects.count()
    scorers = [
        {"type": "rules", "name": "long", "rules": [{"field": "description", "minLength": 20}]},
        {
            "type": "judge",
            "name": "longer",
            "mode": "pairwise",
            "instructions": "Describe {{ entity.title }} in detail.",
            "provider": "openai",
        },
        {
            "type": "judge",
            "name": "always A",
            "mode": "pairwise",
            "instructions": "Describe {{ entity.title }} in detail.",
            "provider": "anthropic",
            "model": "claude-test",
        },
        {"type": "human", "name": "people"},
    ]
    answer = api.post(
        f"/api/v1/workflows/{workflow.pk}/experiments",
        {"candidate": 2, "entityIds": ids, "scorers": scorers},
    )
    assert answer.status_code == 202, answer.json()
    started = answer.json()
    wait_until(
        lambda: Experiment.objects.get(pk=started["id"]).is_ended, "the experiment", timeout=600
    )
    read = api.get(f"/api/v1/experiments/{started['id']}").json()
    assert read["status"] == "completed", read
    assert read["progress"] == {"total": N, "done": N, "waiting": 0}
    for arm in ("baseline", "candidate"):
        assert read["arms"][arm]["completed"] == N
    scores = {score["name"]: score for score in read["scores"]}
    assert (scores["long"]["baseline"], scores["long"]["candidate"]) == (0.0, 1.0)
    assert scores["longer"]["wins"] == N  # the longer side, whichever letter it was shown as
    always_a = scores["always A"]
    assert always_a["wins"] + always_a["losses"] == N
    assert 0.4 * N <= always_a["wins"] <= 0.6 * N  # about half: the order is shuffled
    assert scores["people"]["wins"] == 0
    # Nothing was written or sent.
    time.sleep(1)  # a stray webhook would have arrived by now
    assert {e.pk: (e.data, e.status, e.version) for e in Entity.objects.all()} == before
    assert EntityEvent.objects.count() == events
    assert receiver.requests == []
    assert not Review.objects.exists() and not Wait.objects.exists()
    job = api.get(f"/api/v1/jobs/{started['jobId']}").json()
    assert job["status"] == "completed" and job["usage"]["inputTokens"] > 0


def _draft(product_type, receiver_url):
    ids = make_entities(product_type, 200)
    workflow = make_workflow(product_type, _steps("Short: {{ entity.title }}", receiver_url))
    workflow_update(
        workflow_id=workflow.pk, steps=_steps("LONG: {{ entity.title }}", receiver_url), draft=True
    )
    return workflow, ids


def test_cancel_through_the_job_stops_the_workers(
    celery_worker, api, product_type, receiver, fakes
):
    """Cancelled while its chunks' calls are in flight (a chunk per worker process may be
    all of it: chunks of slow calls are spread over the processes), the chunks stop at
    their next check and write nothing more."""
    openai, _ = fakes
    calls = []

    def slowly(request):
        calls.append(1)
        return Reply(text="Slowly.", delay=0.2)

    openai.decide = slowly
    workflow, ids = _draft(product_type, receiver.url)
    started = api.post(
        f"/api/v1/workflows/{workflow.pk}/experiments",
        {"candidate": 2, "entityIds": ids, "scorers": []},
    ).json()
    wait_until(lambda: len(calls) >= 40, "the chunks' calls to be in flight")
    cancelled = api.post(f"/api/v1/jobs/{started['jobId']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    written = Experiment.objects.get(pk=started["id"]).results.count()
    time.sleep(3)  # the chunks in flight see the cancel at their next step
    experiment = Experiment.objects.get(pk=started["id"])
    assert experiment.status == "cancelled"
    # Nothing is written after it (a chunk's rows are written only while it goes on).
    assert experiment.results.count() == written < 200
    assert len(calls) < 2 * 200  # both sides' calls of every entity were not all made


def test_a_budget_stops_the_calls_on_the_workers(celery_worker, api, product_type, receiver, fakes):
    workflow, ids = _draft(product_type, receiver.url)
    started = api.post(
        f"/api/v1/workflows/{workflow.pk}/experiments",
        {"candidate": 2, "entityIds": ids, "scorers": [], "budget": {"maxTokens": 500}},
    ).json()
    wait_until(
        lambda: Experiment.objects.get(pk=started["id"]).is_ended, "the experiment", timeout=300
    )
    read = api.get(f"/api/v1/experiments/{started['id']}").json()
    assert read["status"] == "completed" and "Budget reached" in read["error"]
    assert read["arms"]["candidate"]["failed"] > 150
    job = api.get(f"/api/v1/jobs/{started['jobId']}").json()
    used = job["usage"]["inputTokens"] + job["usage"]["outputTokens"]
    assert used < 500 + 2 * 2 * 20 * 18  # the budget, and at most the calls in flight
