"""Chunks whose delivery keeps dying end: a stored version naming a step type that no longer
exists fails its entities at that step, and an item whose every delivery is killed fails
after RUN_MAX_ATTEMPTS, saying why. Executed by a real worker, on PostgreSQL and Redis."""

import os
import signal
from unittest import mock

import pytest
from django.conf import settings

from jobs import queue
from jobs.models import RunItem, RunLog
from tests.factories import make_entities, make_workflow, start_run
from tests.servers import Reply, start_llm
from tests.workers import FAKE_LLM_PORT, wait_for_run
from workflows.models import WorkflowVersion

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

TIDY = {
    "id": "tidy",
    "type": "transform",
    "config": {"operations": [{"op": "set", "field": "slug", "value": "x"}]},
}
GENERATE = {
    "id": "gen",
    "type": "ai_generate",
    "config": {"prompt": "Describe {{ entity.title }}", "outputField": "d", "provider": "openai"},
}


def test_a_healthy_chunk_completes_in_one_attempt(celery_worker, product_type):
    run = wait_for_run(
        start_run(make_workflow(product_type, [TIDY]), make_entities(product_type, 3)).pk
    )
    assert (run.status, run.completed) == ("completed", 3)
    assert set(RunItem.objects.filter(run=run).values_list("attempts", flat=True)) == {1}


@pytest.mark.parametrize("gone_at", [0, 1])
def test_a_step_type_that_no_longer_exists_fails_the_entities_at_that_step(
    celery_worker, product_type, gone_at
):
    workflow = make_workflow(product_type, [TIDY, {**TIDY, "id": "later"}])
    version = WorkflowVersion.objects.get(workflow=workflow, number=workflow.version)
    steps = version.steps
    steps[gone_at]["type"] = "retired_step"  # as a version stored before a type was removed
    WorkflowVersion.objects.filter(pk=version.pk).update(steps=steps)

    run = wait_for_run(start_run(workflow, make_entities(product_type, 4)).pk)
    assert (run.status, run.completed, run.failed) == ("failed", 0, 4)
    items = RunItem.objects.filter(run=run)
    step_id = steps[gone_at]["id"]
    assert {(i.status, i.step_id, i.attempts) for i in items} == {("failed", step_id, 1)}
    assert {i.error for i in items} == {
        "Unknown step type 'retired_step': this workflow version names a step type this "
        "deployment does not have."
    }


def test_an_item_whose_every_delivery_is_killed_fails_after_the_last_attempt(
    celery_worker, product_type
):
    """Each delivery's model call kills the worker process making it (as an out-of-memory
    kill would); the chunk comes back each time, until its items have had their attempts."""
    limit = settings.RUN_MAX_ATTEMPTS  # the worker reads the same environment
    fake, server = start_llm("openai", port=FAKE_LLM_PORT)
    kills = []

    def kill_the_caller(request):
        for pid in celery_worker.child_pids():
            os.kill(pid, signal.SIGKILL)
            kills.append(pid)
        return Reply(delay=1.0)  # answered after the caller is gone

    fake.decide = kill_the_caller
    try:
        with mock.patch("jobs.queue.chunks_enqueue"):  # queued below, once prepared
            run = start_run(
                make_workflow(product_type, [GENERATE, TIDY]), make_entities(product_type, 2)
            )
        # As if all but two deliveries had died already: two more are killed, then it ends.
        RunItem.objects.filter(run=run).update(attempts=limit - 2)
        # A run of model calls may be cut into a chunk per worker process: queue each.
        chunks = RunItem.objects.filter(run=run).values_list("chunk", flat=True).distinct()
        queue.chunks_enqueue(run.pk, sorted(chunks))
        run = wait_for_run(run.pk, timeout=120)
    finally:
        server.shutdown()
    assert (run.status, run.completed, run.failed) == ("failed", 0, 2)
    assert len(kills) >= 2 and len(fake.requests) >= 2  # each delivery killed mid-call
    items = RunItem.objects.filter(run=run)
    assert {(i.status, i.attempts) for i in items} == {("failed", limit)}
    error = items[0].error
    assert error.startswith(f"Gave up after {limit} attempts: every delivery of this entity's")
    assert RunLog.objects.filter(run=run, level="error", message=error).count() == 2
