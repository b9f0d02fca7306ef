"""Provider batches in-process: polling when the provider does not answer (the batch stays
open for the next poll, shows the problem, and the run's log says so once, not at every
poll), and what a cancelled run keeps of its batches' earlier attempts."""

import pytest

from jobs.cancel import run_cancel
from jobs.models import AiBatch, AiBatchRequest, AiBatchStatus, Run, RunItem, RunLog
from jobs.waits.ai_batch.services import ai_batch_poll
from tests.factories import make_entities, make_workflow, run_inline, start_run
from tests.servers import Reply
from workflows.usage import Usage

pytestmark = pytest.mark.django_db

GENERATE = {
    "id": "describe",
    "type": "ai_generate",
    "config": {"provider": "openai", "prompt": "x", "outputField": "y", "mode": "batch"},
}


def test_a_provider_failing_every_poll_is_logged_once_and_the_batch_stays_open(
    openai_server, product_type
):
    run = start_run(make_workflow(product_type, [GENERATE]), make_entities(product_type, 1))
    batch = AiBatch.objects.create(
        run=run,
        step_id="describe",
        provider="openai",
        status=AiBatchStatus.IN_PROGRESS,
        provider_batch_id="batch_gone",
    )
    openai_server.batches.script = [Reply(status=404, error="No batch found")] * 3
    polled = [ai_batch_poll(batch_id=batch.pk) for _ in range(3)]

    assert polled == [None, None, None]
    logs = RunLog.objects.filter(run=run, message__startswith="Polling batch batch_gone failed")
    assert logs.count() == 1
    assert "No batch found" in logs.get().message
    batch.refresh_from_db()
    assert batch.status == AiBatchStatus.IN_PROGRESS and batch.lease_until is None
    assert "No batch found" in batch.error


def test_a_cancelled_run_keeps_what_earlier_attempts_of_its_batch_requests_used(product_type):
    """Earlier attempts' usage counted in the run when their results were collected: the
    cancel adds nothing to the run's totals, and each cancelled item keeps its share."""
    local = {**GENERATE, "config": {**GENERATE["config"], "provider": "local"}}
    run = start_run(make_workflow(product_type, [local]), make_entities(product_type, 3))
    run_inline(run.pk)  # parks the 3 entities; their batch is recorded (sent after commit)
    assert Run.objects.get(pk=run.pk).waiting == 3
    earlier = {"inputTokens": 30, "outputTokens": 9, "costNanoUsd": 500, "calls": 1}
    AiBatchRequest.objects.filter(batch__run=run).update(usage=earlier)  # as after a retry
    before = Run.objects.get(pk=run.pk).usage

    run_cancel(run_id=run.pk)
    run = Run.objects.get(pk=run.pk)
    assert run.status == "cancelled" and run.cancelled == 3
    assert run.usage == before
    items = RunItem.objects.filter(run=run)
    assert Usage.total(Usage.of(item.usage) for item in items) == Usage(
        input_tokens=90, output_tokens=27, cost_nano_usd=1500
    )
    assert AiBatch.objects.get(run=run).status == AiBatchStatus.CANCELLING
