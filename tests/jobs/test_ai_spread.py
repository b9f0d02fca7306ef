"""An AI-heavy run uses every worker process: its chunks are sized for its model calls
(AI_RUN_CHUNK_SIZE), so two worker processes share the calls instead of one making them all
while the other idles. The calls each process made are read from its own Prometheus file
(multiprocess mode writes one per process), on a worker of its own queue."""

import json
import os
from pathlib import Path
from unittest import mock

import pytest
from prometheus_client.mmap_dict import MmapedDict

from jobs.models import RunItem
from tests.factories import make_entities, make_workflow, start_run
from tests.processes import ManagedProcess, celery_worker_command
from tests.servers import Reply, start_llm
from tests.workers import chunks_sent_to, wait_for_run, worker_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

QUEUE = f"ai-spread-test-{os.getpid()}"
CONCURRENCY = 4
GENERATE = {
    "id": "gen",
    "type": "ai_generate",
    "config": {"prompt": "Describe {{ entity.title }}", "outputField": "description"},
}


@pytest.fixture(scope="module")
def llm():
    fake, server = start_llm("openai")
    fake.default = Reply(delay=0.2)
    yield fake
    server.shutdown()


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("ai-spread-metrics")


@pytest.fixture(scope="module")
def two_process_worker(django_db_setup, llm, metrics_dir, tmp_path_factory):
    worker = ManagedProcess(
        [*celery_worker_command(2, f"ai-spread-{os.getpid()}@%h"), "-Q", QUEUE],
        "ready.",
        tmp_path_factory.mktemp("ai-spread-worker") / "worker.log",
        {
            **worker_env(),
            "AI_PROVIDER": "openai",
            "OPENAI_BASE_URL": llm.url + "/v1",
            "AI_MAX_CONCURRENCY": str(CONCURRENCY),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        },
    )
    yield worker
    worker.stop()


@pytest.fixture(autouse=True)
def own_queue():
    with chunks_sent_to(QUEUE):
        yield


def calls_by_pid(metrics_dir: Path) -> dict[int, int]:
    """The model calls answered `ok`, by the process that made them."""
    calls = {}
    for path in metrics_dir.glob("counter_*.db"):
        for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, _help = json.loads(key)
            if name == "workflows_model_calls_total" and labels["outcome"] == "ok":
                pid = int(path.stem.split("_")[1])
                calls[pid] = calls.get(pid, 0) + int(value)
    return calls


def test_an_ai_run_is_chunked_for_its_calls_and_both_worker_processes_make_them(
    two_process_worker, llm, metrics_dir, product_type, settings
):
    settings.AI_RUN_CHUNK_SIZE = 8  # RUN_CHUNK_SIZE stays 400: the AI step sets the size
    ids = make_entities(product_type, 48)
    run = start_run(make_workflow(product_type, [GENERATE]), ids)
    run = wait_for_run(run.pk)
    assert (run.status, run.completed) == ("completed", 48)
    chunks = set(RunItem.objects.filter(run=run).values_list("chunk", flat=True))
    assert chunks == set(range(6))
    calls = calls_by_pid(metrics_dir)
    assert sum(calls.values()) == 48 == len(llm.requests)
    workers = set(two_process_worker.child_pids())
    assert set(calls) == workers and len(workers) == 2  # both processes made calls
    assert llm.peak_in_flight > CONCURRENCY  # their calls were in flight together


def test_a_run_without_a_model_step_keeps_the_run_chunk_size(product_type, settings):
    settings.AI_RUN_CHUNK_SIZE = 8
    ids = make_entities(product_type, 20)
    transform = {
        "id": "tidy",
        "type": "transform",
        "config": {"operations": [{"op": "trim", "field": "title"}]},
    }
    with mock.patch("jobs.queue.chunks_enqueue") as enqueue:
        run = start_run(make_workflow(product_type, [transform]), ids)
    assert set(RunItem.objects.filter(run=run).values_list("chunk", flat=True)) == {0}
    enqueue.assert_called_once_with(run.pk, range(1))
