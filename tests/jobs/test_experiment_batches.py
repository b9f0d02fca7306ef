"""Batch mode in an experiment, executed in the test process against the fake OpenAI batch
endpoints: a side at an `ai_generate` step in batch mode waits for a provider batch the
experiment owns (the `ai_batch` kind's), is continued once answered, still in shadow mode,
and is counted at batch prices; redelivered chunks and resumes write nothing twice; cancel
and budget."""

import math
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from entities.models import Entity
from jobs.experiments import services, summaries
from jobs.experiments.batches import Left, _claim, sides_store
from jobs.experiments.models import Experiment, ExperimentSide, ExperimentStatus, SideStatus
from jobs.experiments.selectors import sides_to_resume
from jobs.experiments.shadow import ShadowEngine
from jobs.models import AiBatch, AiBatchRequest, AiBatchStatus, Wait
from jobs.waits.ai_batch.services import ai_batch_cancel, ai_batches_poll
from tests.factories import make_entities, make_workflow
from tests.servers import Reply
from workflows.services import workflow_update

pytestmark = pytest.mark.django_db

MODEL = "priced-batch-test"
PRICE = {"input": 1.0, "cachedInput": 0.5, "output": 2.0}


def _generate(mode: str) -> dict:
    return {
        "id": "gen",
        "type": "ai_generate",
        "config": {
            "prompt": "Describe {{ entity.title }}",
            "outputField": "description",
            "provider": "openai",
            "model": MODEL,
            "mode": mode,
        },
    }


AFTER = [
    {"id": "ok", "type": "review", "config": {"instructions": "Check it."}},
    {"id": "pub", "type": "publish", "config": {}},
]


@pytest.fixture
def fake(openai_server, settings):
    settings.AI_PRICES = {MODEL: PRICE}
    openai_server.default = Reply(text="A fine description.", input_tokens=40, output_tokens=10)
    return openai_server


def _start(product_type, n: int, *, budget=None, scorers=()):
    """An experiment whose baseline calls the model live and whose candidate, the same
    step in batch mode, sends a provider batch."""
    workflow = make_workflow(product_type, [_generate("sync"), *AFTER])
    workflow = workflow_update(
        workflow_id=workflow.pk, steps=[_generate("batch"), *AFTER], draft=True
    )
    versions = {v.number: v for v in workflow.versions.all()}
    ids = make_entities(product_type, n)
    experiment = services.experiment_start(
        workflow=workflow,
        baseline=versions[1],
        candidate=versions[2],
        scorers=list(scorers),
        entity_ids=ids,
        budget=budget,
    )
    return experiment, ids


def _chunks(experiment):
    for chunk in range(math.ceil(experiment.total / experiment.chunk_size)):
        services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=chunk)


def _resume(experiment):
    """The resume tasks the collected batches queued (each batch's key)."""
    for key in sides_to_resume(experiment.pk):
        services.experiment_sides_resume(experiment_id=experiment.pk, key=key)


def _answer_batches(experiment):
    """What beat's ticks and the resume tasks do: submit, poll (the fake ends a batch at
    once), continue the answered sides."""
    ai_batches_poll()  # submits
    ai_batches_poll()  # collects
    _resume(experiment)
    experiment.refresh_from_db()
    return experiment


def test_a_batch_mode_side_waits_for_its_batch_then_goes_on_in_shadow_at_batch_prices(
    product_type, fake, settings, api
):
    settings.EXPERIMENT_CHUNK_SIZE = 10
    experiment, ids = _start(product_type, 25)
    before = {e.pk: (e.data, e.status, e.version) for e in Entity.objects.filter(pk__in=ids)}
    _chunks(experiment)
    # The API says they wait (not done, not lost), in the list as on the experiment.
    shown = api.get(f"/api/v1/experiments/{experiment.pk}").json()
    assert shown["progress"] == {"total": 25, "done": 0, "waiting": 25}
    [listed] = api.get("/api/v1/experiments").json()
    assert listed["progress"]["waiting"] == 25
    job = api.get(f"/api/v1/jobs/{shown['jobId']}").json()
    assert (job["progress"]["completed"], job["progress"]["waiting"]) == (0, 25)
    [listed_job] = api.get("/api/v1/jobs").json()
    assert listed_job["progress"]["waiting"] == 25

    # The candidate's sides wait (one batch per chunk), the baseline's ended; no row yet.
    sides = ExperimentSide.objects.filter(experiment=experiment)
    assert sides.filter(arm="candidate", status=SideStatus.WAITING).count() == 25
    assert sides.filter(arm="baseline", status=SideStatus.ENDED).count() == 25
    assert not experiment.results.exists()
    batches = AiBatch.objects.filter(experiment=experiment)
    assert [(b.status, b.total, b.run_id) for b in batches.order_by("pk")] == [
        ("pending", 10, None),
        ("pending", 10, None),
        ("pending", 5, None),
    ]
    assert len(fake.requests) == 25  # the baseline's, live

    experiment = _answer_batches(experiment)
    assert experiment.status == ExperimentStatus.COMPLETED and experiment.done == 25
    shown = api.get(f"/api/v1/experiments/{experiment.pk}").json()
    assert shown["progress"] == {"total": 25, "done": 25, "waiting": 0}
    # Each batch's end is in the experiment's log, as in a run's: its job's log in the API.
    lines = api.get(f"/api/v1/jobs/{shown['jobId']}/logs").json()
    assert sorted(line["message"] for line in lines) == [
        f"Batch {batch.provider_batch_id} ended: {batch.total} answered, 0 failed, 0 sent again."
        for batch in sorted(batches, key=lambda batch: batch.provider_batch_id)
    ]
    assert {(line["level"], line["stepId"], line["entityId"]) for line in lines} == {
        ("info", "gen", None)
    }
    assert len(fake.batches.submissions) == 3 and len(fake.requests) == 25  # none live
    assert set(batches.values_list("status", flat=True)) == {AiBatchStatus.ENDED}
    assert not sides.exists()
    results = list(experiment.results.order_by("position"))
    assert [r.entity_id for r in results] == ids
    for result in results:
        baseline, candidate = result.baseline, result.candidate
        assert baseline["outcome"] == candidate["outcome"] == "completed"
        assert candidate["data"]["description"] == "A fine description."
        assert [s["stepId"] for s in candidate["steps"]] == ["gen", "ok", "pub"]
        assert candidate["steps"][0]["output"] == "A fine description."
        assert {"stepId": "gen", "kind": "ai_batch"} in candidate["waits"]
        assert {"stepId": "ok", "kind": "review"} in candidate["waits"]
        assert candidate["changes"] == baseline["changes"]
        # The same tokens, at half the price.
        assert candidate["usage"]["inputTokens"] == baseline["usage"]["inputTokens"] == 40
        assert candidate["usage"]["costNanoUsd"] * 2 == baseline["usage"]["costNanoUsd"]
    arms = summaries.arms_summary(experiment)
    assert arms["candidate"]["costUsd"] * 2 == pytest.approx(arms["baseline"]["costUsd"])
    # The experiment's usage counts both: the live calls and the batch's answers, once.
    assert experiment.input_tokens == 2 * 25 * 40
    assert experiment.cost_nano_usd == 25 * sum(
        result.baseline["usage"]["costNanoUsd"] + result.candidate["usage"]["costNanoUsd"]
        for result in results[:1]
    )
    # Nothing was written: no entity, no review, no wait of a run.
    after = {e.pk: (e.data, e.status, e.version) for e in Entity.objects.filter(pk__in=ids)}
    assert after == before
    assert not Wait.objects.exists()


def test_a_redelivered_chunk_and_a_resume_after_a_dead_worker_write_nothing_twice(
    product_type, fake, settings
):
    settings.EXPERIMENT_CHUNK_SIZE = 10
    experiment, _ = _start(product_type, 10)
    _chunks(experiment)
    _chunks(experiment)  # delivered again: the entities are parked already
    assert ExperimentSide.objects.filter(experiment=experiment).count() == 20
    assert AiBatch.objects.filter(experiment=experiment).count() == 1
    ai_batches_poll()
    ai_batches_poll()
    [batch] = AiBatch.objects.filter(experiment=experiment)
    claimed = _claim(experiment.pk, batch.pk)  # a worker takes the answered sides, then dies
    assert len(claimed) == 10 and not experiment.results.exists()
    _resume(experiment)  # its task, delivered again, takes them over
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.COMPLETED and experiment.results.count() == 10
    # The dead delivery's claim writes nothing once it was taken over.
    sides_store(
        experiment,
        ShadowEngine(experiment),
        Left(),
        key=batch.pk,
        claimed={side.pk: side.attempts for side in claimed},
    )
    assert experiment.results.count() == 10
    assert not ExperimentSide.objects.filter(experiment=experiment).exists()
    assert experiment.input_tokens == 2 * 10 * 40  # each batch answer counted once


def test_a_side_whose_every_resume_died_ends_failed_and_its_experiment_ends(
    product_type, fake, settings
):
    settings.EXPERIMENT_CHUNK_SIZE = 10
    settings.RUN_MAX_ATTEMPTS = 2
    experiment, ids = _start(product_type, 4)
    _chunks(experiment)
    ai_batches_poll()
    ai_batches_poll()
    [batch] = AiBatch.objects.filter(experiment=experiment)
    for _ in range(2):  # two resumes take the answered sides, and die
        assert len(_claim(experiment.pk, batch.pk)) == 4
    calls = len(fake.requests)
    # A third right away leaves them to the second, which may still be continuing them.
    _resume(experiment)
    assert ExperimentSide.objects.filter(experiment=experiment, status="resolved").count() == 4
    # Once their last claim is RUN_STALL_AFTER_S old, the next resume gives them up.
    long_ago = timezone.now() - timedelta(seconds=settings.RUN_STALL_AFTER_S + 1)
    ExperimentSide.objects.filter(experiment=experiment).update(claimed_at=long_ago)
    _resume(experiment)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.COMPLETED and experiment.done == 4
    assert not ExperimentSide.objects.filter(experiment=experiment).exists()
    assert len(fake.requests) == calls
    for result in experiment.results.all():
        assert result.baseline["outcome"] == "completed"
        candidate = result.candidate
        assert candidate["outcome"] == "failed" and result.regressed
        assert candidate["error"].startswith(
            "Gave up after 2 attempts: every delivery of this side's resume ended"
        )
        # It stopped at the batch step: the review and the publish after it never ran.
        assert [step["stepId"] for step in candidate["steps"]] == ["gen"]
        assert candidate["usage"]["inputTokens"] == 40  # the batch's answer, counted once
    assert experiment.input_tokens == 2 * 4 * 40
    given_up = experiment.logs.filter(level="error")
    assert sorted(given_up.values_list("entity_id", flat=True)) == sorted(ids)
    assert given_up.first().message.startswith(
        "The candidate's side, at step gen: Gave up after 2 attempts"
    )


def test_cancelling_an_experiment_cancels_its_batches_and_drops_its_sides(
    product_type, fake, settings
):
    settings.EXPERIMENT_CHUNK_SIZE = 10
    fake.batches.delay = math.inf
    experiment, _ = _start(product_type, 10)
    _chunks(experiment)
    ai_batches_poll()  # submitted, open at the provider
    [batch] = AiBatch.objects.filter(experiment=experiment)
    assert AiBatch.objects.get(pk=batch.pk).status == AiBatchStatus.IN_PROGRESS
    services.experiment_cancel(experiment_id=experiment.pk)
    assert AiBatch.objects.get(pk=batch.pk).status == AiBatchStatus.CANCELLING
    assert not ExperimentSide.objects.filter(experiment=experiment).exists()
    ai_batch_cancel(batch_id=batch.pk)  # the task queued on commit
    assert fake.batches.cancels == [fake.batches.submissions[0].id]
    assert AiBatch.objects.get(pk=batch.pk).status == AiBatchStatus.CANCELLED
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.CANCELLED and not experiment.results.exists()


def test_a_budget_reserves_each_batch_request_and_fails_those_past_it(product_type, fake, settings):
    settings.EXPERIMENT_CHUNK_SIZE = 10
    # The baseline's 20 live calls spend 1,000 tokens; the candidate's requests are
    # reserved at their estimates (300 output tokens each) while the budget allows.
    experiment, _ = _start(product_type, 20, budget={"maxTokens": 2000})
    _chunks(experiment)
    parked = AiBatchRequest.objects.filter(batch__experiment=experiment).count()
    assert 0 < parked < 20
    experiment = _answer_batches(experiment)
    assert experiment.status == ExperimentStatus.COMPLETED
    assert "Budget reached" in experiment.error
    failed = experiment.results.filter(candidate__outcome="failed")
    assert failed.count() == 20 - parked
    assert all("Budget reached" in r.candidate["error"] for r in failed)
    assert experiment.results.filter(candidate__outcome="completed").count() == parked
    # The reservations were replaced by what the answers spent.
    assert experiment.spent_tokens == experiment.input_tokens + experiment.output_tokens


def test_the_stall_check_resumes_answered_sides_and_queues_no_chunk_of_parked_entities(
    product_type, fake, settings, django_capture_on_commit_callbacks
):
    settings.EXPERIMENT_CHUNK_SIZE = 10
    experiment, _ = _start(product_type, 10)
    _chunks(experiment)
    stalled = timezone.now() - timedelta(hours=1)
    Experiment.objects.filter(pk=experiment.pk).update(heartbeat_at=stalled)
    with (
        mock.patch("jobs.queue.experiment_sides_resume_enqueue") as resume,
        mock.patch("jobs.queue.experiment_chunks_enqueue") as chunks,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert services.experiments_resume_stalled() == 0  # its sides wait: nothing to do
    resume.assert_not_called()
    chunks.assert_not_called()

    ai_batches_poll()
    ai_batches_poll()  # answered; say its resume task was lost
    [batch] = AiBatch.objects.filter(experiment=experiment)
    Experiment.objects.filter(pk=experiment.pk).update(heartbeat_at=stalled)
    with (
        mock.patch("jobs.queue.experiment_sides_resume_enqueue") as resume,
        mock.patch("jobs.queue.experiment_chunks_enqueue") as chunks,
        django_capture_on_commit_callbacks(execute=True),
    ):
        services.experiments_resume_stalled()
    resume.assert_called_once_with(experiment.pk, batch.pk)
    chunks.assert_not_called()
