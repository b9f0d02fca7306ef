"""A run's budget holds across workers and chunks: 4 chunks at once on real worker
processes, one fake OpenAI server counting the calls it answers (and how many at once).

The chunks go to a queue of their own, so that only these workers (4 processes, 2 calls in
flight each) run them, whatever other worker the session started."""

import os

import pytest

from jobs.models import Run, RunItem, RunLog
from tests.factories import make_entities, make_workflow, start_run
from tests.processes import ManagedProcess, celery_worker_command
from tests.servers import Reply, start_llm
from tests.workers import FAKE_LLM_PORT, chunks_sent_to, wait_for_run, worker_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

QUEUE = f"budget-test-{os.getpid()}"
IN_FLIGHT_AT_MOST = 4 * 2  # 4 chunks at once, AI_MAX_CONCURRENCY 2
CALL = Reply(text="An answer.", input_tokens=100, output_tokens=50, delay=0.2)
GENERATE = {
    "id": "gen",
    "type": "ai_generate",
    "config": {
        "prompt": "Describe {{ entity.title }}",
        "outputField": "description",
        "provider": "openai",
        "model": "gpt-5-mini",
    },
}


@pytest.fixture(scope="module")
def four_chunk_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """Four worker processes, each keeping 2 calls in flight: 4 chunks run at once."""
    worker = ManagedProcess(
        [*celery_worker_command(4, f"budget-{os.getpid()}@%h"), "-Q", QUEUE],
        "ready.",
        tmp_path_factory.mktemp("budget-worker") / "worker.log",
        {**worker_env(), "AI_MAX_CONCURRENCY": "2"},
    )
    yield worker
    worker.stop()


@pytest.fixture(autouse=True)
def own_queue():
    with chunks_sent_to(QUEUE):
        yield


@pytest.fixture(scope="module")
def llm_server():
    # One server for the module: the workers keep their connections to it alive.
    fake, server = start_llm("openai", port=FAKE_LLM_PORT)
    fake.default = CALL
    yield fake
    server.shutdown()


@pytest.fixture
def llm(llm_server):
    with llm_server.lock:
        llm_server.requests.clear()
        llm_server.times.clear()
        llm_server.peak_in_flight = 0
    return llm_server


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        # 10 calls of 150 tokens; 10 calls of gpt-5-mini at 100 in, 50 out: $0.00125.
        ({"maxTokens": 1500}, "Budget reached: maxTokens 1500 (spent "),
        ({"maxCostUsd": 0.00125}, "Budget reached: maxCostUsd 0.00125 (spent "),
    ],
)
def test_a_budget_reached_while_4_chunks_run_stops_new_calls_and_fails_the_rest(
    four_chunk_worker, llm, product_type, settings, budget, message
):
    settings.RUN_CHUNK_SIZE = 10
    ids = make_entities(product_type, 40)
    run = start_run(make_workflow(product_type, [GENERATE]), ids, budget=budget)
    run = wait_for_run(run.pk)
    calls = len(llm.requests)
    assert llm.peak_in_flight > 2  # more than one chunk's calls were in flight together
    # Once reached no call started: the overshoot is at most the calls then in flight.
    assert 10 <= calls <= 10 + IN_FLIGHT_AT_MOST
    assert run.status == "failed"
    assert (run.completed, run.failed) == (calls, 40 - calls)
    assert run.spent_tokens == calls * 150 == run.input_tokens + run.output_tokens
    failed = RunItem.objects.filter(run=run, status="failed")
    assert failed.count() == 40 - calls
    assert all(item.error.startswith(message) for item in failed)
    assert all(item.step_id == "gen" and not item.usage for item in failed)
    # Said once, when reached (each entity failed has its own error line too).
    [line] = RunLog.objects.filter(run=run, level="warning", message__startswith=message)
    assert "no new model call starts" in line.message and not line.entity_id
    errors = RunLog.objects.filter(run=run, level="error", message__startswith=message)
    assert errors.count() == 40 - calls
    assert Run.objects.get(pk=run.pk).budget_reached_at is not None


def test_a_run_within_its_budget_completes(four_chunk_worker, llm, product_type, settings):
    settings.RUN_CHUNK_SIZE = 10
    ids = make_entities(product_type, 20)
    run = start_run(make_workflow(product_type, [GENERATE]), ids, budget={"maxTokens": 10**6})
    run = wait_for_run(run.pk)
    assert (run.status, run.completed, len(llm.requests)) == ("completed", 20, 20)
    assert run.spent_tokens == 20 * 150 and run.budget_reached_at is None
    assert run.cost_usd == pytest.approx(20 * 0.000125)
