"""Provider batches in-process: polling when the provider does not answer (the batch stays
open for the next poll, shows the problem, and the run's log says so once, not at every
poll), what a cancelled run keeps of its batches' earlier attempts and of answers not resumed
yet, and answers resolving their waits with a `Usage` counted once in the run."""

import pytest

from jobs.cancel import run_cancel
from jobs.engine.waits import run_waits_resume
from jobs.models import AiBatch, AiBatchRequest, AiBatchStatus, Run, RunItem, RunLog, Wait
from jobs.waits.ai_batch.services import ai_batch_poll, ai_batches_poll
from tests.factories import make_entities, make_workflow, run_inline, start_run
from tests.servers import Reply
from tests.workers import PRICED_LOCAL, PRICED_LOCAL_PRICE
from workflows.steps.waits import Resolution
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


@pytest.fixture
def answered_at_once(settings):
    """The local stand-in's batches end as soon as they are submitted, at a price."""
    settings.AI_LOCAL_BATCH_DELAY_S = 0
    settings.AI_PRICES = {PRICED_LOCAL: {"cachedInput": 1.0, **PRICED_LOCAL_PRICE}}
    return {
        **GENERATE,
        "config": {**GENERATE["config"], "provider": "local", "model": PRICED_LOCAL},
    }


def _answered(product_type, step, n: int) -> Run:
    """A run whose `n` entities parked at `step` and whose batch was answered (waits resolved,
    not resumed yet)."""
    run = start_run(make_workflow(product_type, [step]), make_entities(product_type, n))
    run_inline(run.pk)
    ai_batches_poll()  # submits it
    ai_batches_poll()  # polls it: ended, its answers collected
    assert Wait.objects.filter(run=run, status="resolved").count() == n
    return Run.objects.get(pk=run.pk)


def test_answers_resolve_with_a_usage_counted_once_and_each_step_keeps_its_calls(
    product_type, answered_at_once
):
    run = _answered(product_type, answered_at_once, 3)
    counted = run.usage  # the answers count when collected
    assert counted.input_tokens > 0 and counted.cost_nano_usd > 0
    resolutions = [Resolution.of(each.resolution) for each in Wait.objects.filter(run=run)]
    assert all(isinstance(each.usage, Usage) and each.calls == 1 for each in resolutions)
    assert Usage.total(each.usage for each in resolutions) == counted

    run_waits_resume(run_id=run.pk)
    run_inline(run.pk)
    run = Run.objects.get(pk=run.pk)
    assert (run.status, run.completed) == ("completed", 3)
    assert run.usage == counted  # not counted again when the entities end
    items = list(RunItem.objects.filter(run=run))
    assert Usage.total(Usage.of(item.usage) for item in items) == run.usage
    # What estimates read: the calls per entity at the step.
    assert [item.usage["steps"]["describe"]["calls"] for item in items] == [1, 1, 1]


def test_a_cancel_before_the_resume_keeps_what_the_answers_used(product_type, answered_at_once):
    run = _answered(product_type, answered_at_once, 4)
    counted = run.usage
    assert counted.cost_nano_usd > 0

    run_cancel(run_id=run.pk)
    run = Run.objects.get(pk=run.pk)
    assert (run.status, run.cancelled) == ("cancelled", 4)
    assert run.usage == counted
    items = RunItem.objects.filter(run=run)
    assert Usage.total(Usage.of(item.usage) for item in items) == counted


def test_the_kinds_tasks_keep_their_names_so_messages_queued_before_the_move_are_run():
    from config.celery import app

    app.loader.import_default_modules()  # what a worker does at its start
    for name in ("jobs.tasks.submit_ai_batch", "jobs.tasks.cancel_ai_batch"):
        assert app.tasks[name].__module__ == "jobs.waits.ai_batch.tasks"


def test_a_results_file_with_garbage_lines_resolves_its_answers_and_the_tick_goes_on(
    openai_server, product_type
):
    """Lines that are not JSON, are cut short or name no request are left out; a request's
    second, unreadable line does not replace its answer (paid for once, not asked again)."""
    run = start_run(make_workflow(product_type, [GENERATE]), make_entities(product_type, 2))
    run_inline(run.pk)
    ai_batches_poll()  # submits it
    first = AiBatchRequest.objects.filter(batch__run=run).order_by("pk").first()
    openai_server.batches.garbage = [
        "not JSON at all",
        '{"custom_id": "' + first.pk + '", "response": {"status_code": 200, "bo',
        '{"id": "batch_req_9"}',
        '{"custom_id": "' + first.pk + '", "response": "odd"}',
    ]
    ai_batches_poll()  # polls it: ended, its answers collected

    waits = Wait.objects.filter(run=run)
    assert [w.status for w in waits] == ["resolved", "resolved"]
    assert all(Resolution.of(w.resolution).outcome == "continue" for w in waits)
    assert AiBatch.objects.filter(run=run).get().status == AiBatchStatus.ENDED
    assert len(openai_server.batches.submissions) == 1  # nothing sent again


def test_a_server_error_at_submission_leaves_the_batch_to_be_sent_again_not_its_entities_failed(
    openai_server, product_type
):
    """A 500 (a 429, a timeout) at submission says nothing of the requests: the batch waits
    for the next try, the same key finding a batch the provider made after all."""
    run = start_run(make_workflow(product_type, [GENERATE]), make_entities(product_type, 2))
    run_inline(run.pk)
    openai_server.batches.script = [Reply(status=500, error="the batch service is down")]
    ai_batches_poll()  # its submission meets the 500

    batch = AiBatch.objects.get(run=run)
    assert batch.status == AiBatchStatus.PENDING and "the batch service is down" in batch.error
    assert [w.status for w in Wait.objects.filter(run=run)] == ["waiting", "waiting"]
    assert openai_server.batches.submissions == []
    assert ai_batches_poll() == 0  # not at every tick: after AI_BATCH_POLL_S
    warned = RunLog.objects.filter(run=run, level="warning", message__contains="service is down")
    assert warned.count() == 1

    AiBatch.objects.filter(pk=batch.pk).update(lease_until=None)  # its time came
    ai_batches_poll()
    batch.refresh_from_db()
    assert batch.status == AiBatchStatus.IN_PROGRESS and batch.error == ""
    assert len(openai_server.batches.submissions) == 1
    ai_batches_poll(), ai_batches_poll()
    assert [w.status for w in Wait.objects.filter(run=run)] == ["resolved", "resolved"]
