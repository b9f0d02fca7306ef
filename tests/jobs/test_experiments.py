"""Experiments' engine and scorers, chunks executed in the test process against the fake
OpenAI-compatible and Anthropic servers: both versions run in shadow mode (nothing written),
rules and judge verdicts, the judge's A/B order mapped back, budget and cancel."""

import dataclasses
import json
import re
import threading
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from entities.models import Entity
from jobs.experiments import human, services, shadow, summaries
from jobs.experiments.log import experiment_log
from jobs.experiments.models import Experiment, ExperimentLog, ExperimentStatus
from jobs.experiments.scorers import candidate_is_a
from jobs.models import Job
from tests.factories import (
    SCORERS_OF_EACH_TYPE,
    ai_generate_step,
    answer_by_prompt,
    experiment_run_inline,
    make_entities,
    make_versions,
    make_workflow,
)
from tests.servers import Reply
from workflows.services import workflow_update
from workflows.usage import Usage

pytestmark = pytest.mark.django_db


def test_both_versions_run_in_shadow_and_are_scored(product_type, openai_server, settings):
    settings.EXPERIMENT_CHUNK_SIZE = 7
    workflow, baseline, candidate = make_versions(product_type)
    ids = make_entities(product_type, 30)
    before = {e.pk: (e.data, e.status, e.version) for e in Entity.objects.filter(pk__in=ids)}
    answer_by_prompt(openai_server)
    experiment = services.experiment_start(
        workflow=workflow,
        baseline=baseline,
        candidate=candidate,
        scorers=SCORERS_OF_EACH_TYPE,
        entity_ids=ids,
    )
    assert Job.objects.get(experiment=experiment).type == Job.Type.EXPERIMENT
    experiment = experiment_run_inline(experiment)
    assert experiment.status == ExperimentStatus.COMPLETED
    assert experiment.done == 30
    after = {e.pk: (e.data, e.status, e.version) for e in Entity.objects.filter(pk__in=ids)}
    assert after == before  # nothing written
    results = list(experiment.results.order_by("position"))
    assert [r.entity_id for r in results] == ids
    for result in results:
        assert result.baseline["outcome"] == result.candidate["outcome"] == "completed"
        review = result.candidate["steps"][2]
        assert review["output"]["approved"] is True
        changed = {c["field"] for c in result.candidate["changes"]}
        assert changed == {"description", "status"}
        rules, judge, human = result.verdicts
        assert rules["candidate"]["passed"] and not rules["baseline"]["passed"]
        assert judge["winner"] == "candidate"  # the longer side, whichever letter it had
        assert judge["candidateIsA"] == candidate_is_a(experiment.pk, result.entity_id)
        assert human["winner"] is None
        assert result.changed and not result.regressed
    assert {r.verdicts[1]["candidateIsA"] for r in results} == {True, False}
    with CaptureQueriesContext(connection) as queries:
        arms = summaries.arms_summary(experiment)
    assert arms["baseline"]["completed"] == arms["candidate"]["completed"] == 30
    assert arms["candidate"]["inputTokens"] > 0
    assert arms["candidate"]["meanSeconds"] is not None
    # Each side's usage and seconds are read, never the side whole (its data and outputs).
    read = [query["sql"] for query in queries]
    assert not [sql for sql in read if re.search(r'\."(baseline|candidate)"(?! ->)', sql)], read
    scores = {s["name"]: s for s in summaries.scores_summary(experiment)}
    assert scores["long enough"]["candidate"] == 1 and scores["long enough"]["baseline"] == 0
    assert scores["judge"]["wins"] == 30 and scores["judge"]["losses"] == 0


def test_an_always_a_judge_wins_about_half(product_type, openai_server, settings):
    settings.EXPERIMENT_CHUNK_SIZE = 50
    workflow, baseline, candidate = make_versions(product_type)
    ids = make_entities(product_type, 200)
    openai_server.default = Reply(text=json.dumps({"winner": "A", "reason": "first"}))
    scorers = [SCORERS_OF_EACH_TYPE[1]]
    experiment = services.experiment_start(
        workflow=workflow, baseline=baseline, candidate=candidate, scorers=scorers, entity_ids=ids
    )
    experiment = experiment_run_inline(experiment)
    score = summaries.scores_summary(experiment)[0]
    assert score["wins"] + score["losses"] == 200
    assert 70 <= score["wins"] <= 130


def test_a_judge_reads_the_status_each_side_left(product_type, openai_server, settings):
    """The candidate leaves the entity a draft where the baseline publishes it: the judge is
    shown each side's status (a change either side made), not null for both."""
    settings.EXPERIMENT_CHUNK_SIZE = 5
    workflow, baseline, _ = make_versions(product_type)
    workflow = workflow_update(
        workflow_id=workflow.pk,
        steps=[ai_generate_step("LONG: {{ entity.title }}")],
        draft=True,
    )
    candidate = workflow.versions.get(number=3)
    answer_by_prompt(openai_server)
    experiment = services.experiment_start(
        workflow=workflow,
        baseline=baseline,
        candidate=candidate,
        scorers=[SCORERS_OF_EACH_TYPE[1]],
        entity_ids=make_entities(product_type, 2),
    )
    experiment_run_inline(experiment)
    [judged, _] = [prompt for prompt in openai_server.prompts() if "<A>" in prompt]
    shown = {
        side: json.loads(judged.split(f"<{side}>")[1].split(f"</{side}>")[0]) for side in ("A", "B")
    }
    assert sorted(side["status"] for side in shown.values()) == ["draft", "published"], shown


def test_a_judge_reads_the_fields_it_names_by_dotted_paths(product_type, openai_server, settings):
    """`fields: ["seo.description"]` reads that nested value of each side, as a rule and
    every step read a dotted path, not null for both."""
    settings.EXPERIMENT_CHUNK_SIZE = 5

    def steps(prompt):
        step = ai_generate_step(prompt)
        return [{**step, "config": {**step["config"], "outputField": "seo.description"}}]

    workflow = make_workflow(product_type, steps("Short: {{ entity.title }}"))
    workflow = workflow_update(
        workflow_id=workflow.pk, steps=steps("LONG: {{ entity.title }}"), draft=True
    )
    baseline, candidate = workflow.versions.order_by("number")
    answer_by_prompt(openai_server)
    judge = {**SCORERS_OF_EACH_TYPE[1], "fields": ["seo.description", "title"]}
    experiment = services.experiment_start(
        workflow=workflow,
        baseline=baseline,
        candidate=candidate,
        scorers=[judge],
        entity_ids=make_entities(product_type, 1),
    )
    experiment_run_inline(experiment)
    [judged] = [prompt for prompt in openai_server.prompts() if "<A>" in prompt]
    shown = [json.loads(judged.split(f"<{side}>")[1].split(f"</{side}>")[0]) for side in ("A", "B")]
    assert sorted(side["seo.description"] for side in shown) == [
        "A much longer and more detailed description.",
        "Short one.",
    ], shown
    assert {side["title"] for side in shown} == {"Item 0"}


def test_a_chunks_judges_calls_are_in_flight_together(product_type, openai_server, settings):
    """As a step's calls are (up to AI_MAX_CONCURRENCY): one at a time, a chunk of a few
    hundred entities spent its judge's latency a few hundred times over, more than both
    sides' steps together."""
    settings.EXPERIMENT_CHUNK_SIZE = 12
    settings.AI_MAX_CONCURRENCY = 4
    workflow, baseline, candidate = make_versions(product_type)
    answer_by_prompt(openai_server)
    answer = openai_server.decide

    def judge_slowly(request):
        reply = answer(request)
        judging = "<A>" in request["messages"][-1]["content"]
        return dataclasses.replace(reply, delay=0.3) if judging else reply

    openai_server.decide = judge_slowly
    experiment = services.experiment_start(
        workflow=workflow,
        baseline=baseline,
        candidate=candidate,
        scorers=[SCORERS_OF_EACH_TYPE[1]],
        entity_ids=make_entities(product_type, 12),
    )
    experiment = experiment_run_inline(experiment)
    started = [
        at
        for prompt, at in zip(openai_server.prompts(), openai_server.times, strict=True)
        if "<A>" in prompt
    ]
    # 12 calls of 0.3 s, 4 at a time: the last starts 0.6 s after the first (3.3 s in turn).
    assert len(started) == 12 and max(started) - min(started) < 1.5
    scores = summaries.scores_summary(experiment)
    assert scores[0]["wins"] == 12  # each verdict mapped back to its own entity
    judged = sum(Usage.of(r.judge_usage).input_tokens for r in experiment.results.all())
    assert judged > 0 and all(r.judge_usage for r in experiment.results.all())
    sides = sum(
        Usage.of(r.baseline["usage"]).input_tokens + Usage.of(r.candidate["usage"]).input_tokens
        for r in experiment.results.all()
    )
    assert experiment.input_tokens == sides + judged  # every call counted once


def test_a_budget_stops_the_model_calls(product_type, openai_server, settings):
    settings.EXPERIMENT_CHUNK_SIZE = 5
    workflow, baseline, candidate = make_versions(product_type)
    ids = make_entities(product_type, 40)
    experiment = services.experiment_start(
        workflow=workflow,
        baseline=baseline,
        candidate=candidate,
        scorers=[],
        entity_ids=ids,
        budget={"maxTokens": 100},
    )
    experiment = experiment_run_inline(experiment)
    assert experiment.status == ExperimentStatus.COMPLETED
    assert experiment.budget_reached_at is not None
    assert "Budget reached" in experiment.error
    failed = experiment.results.filter(candidate__outcome="failed").count()
    assert failed > 30
    assert len(openai_server.requests) < 20
    # Said once in its log, however many calls met it.
    [line] = experiment.logs.all()
    assert line.level == "warning" and line.message.startswith("Budget reached: ")
    assert line.message.endswith("no new model call starts; the entities left fail.")


def test_cancel_ends_it_and_nothing_more_is_written(product_type, openai_server, settings):
    settings.EXPERIMENT_CHUNK_SIZE = 5
    workflow, baseline, candidate = make_versions(product_type)
    ids = make_entities(product_type, 20)
    experiment = services.experiment_start(
        workflow=workflow, baseline=baseline, candidate=candidate, scorers=[], entity_ids=ids
    )
    services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=0)
    services.experiment_cancel(experiment_id=experiment.pk)
    experiment = experiment_run_inline(experiment)
    assert experiment.status == ExperimentStatus.CANCELLED
    assert experiment.results.count() == 5
    assert Experiment.objects.get(pk=experiment.pk).done == 5


def _started_unqueued(product_type, openai_server, scorers: list[dict], entities: int):
    """An experiment of `make_versions`' two versions on new entities, its model answering
    by prompt, started with no chunk queued: no worker of the session's takes it, the test
    runs it in this process."""
    workflow, baseline, candidate = make_versions(product_type)
    answer_by_prompt(openai_server)
    with mock.patch("jobs.queue.experiment_chunks_enqueue"):
        return services.experiment_start(
            workflow=workflow,
            baseline=baseline,
            candidate=candidate,
            scorers=scorers,
            entity_ids=make_entities(product_type, entities),
        )


@pytest.mark.django_db(transaction=True)
def test_a_cancel_while_the_judges_score_a_chunk_stops_them_and_writes_nothing(
    product_type, openai_server, settings
):
    """Cancelled after a chunk's steps ran, while its judges score the entities (the cancel
    asked during the first judge's call): no judge call starts after it and the chunk writes
    no row (the summary stored at the cancel stays what the results show)."""
    settings.EXPERIMENT_CHUNK_SIZE = 5
    settings.AI_MAX_CONCURRENCY = 1  # one entity judged at a time
    experiment = _started_unqueued(product_type, openai_server, SCORERS_OF_EACH_TYPE, 5)
    answer = openai_server.decide

    def cancel_at_the_first_judge(request):
        if "<A>" in request["messages"][-1]["content"]:
            try:
                if not Experiment.objects.get(pk=experiment.pk).is_ended:
                    services.experiment_cancel(experiment_id=experiment.pk)
                    time.sleep(shadow.CHECK_INTERVAL_S)  # a chunk's next check reads it
            finally:
                connection.close()
        return answer(request)

    openai_server.decide = cancel_at_the_first_judge
    services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=0)
    judged = [prompt for prompt in openai_server.prompts() if "<A>" in prompt]
    assert len(judged) == 1
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.CANCELLED
    assert not experiment.results.exists() and experiment.done == 0
    assert experiment.summary["arms"]["baseline"]["completed"] == 0
    assert experiment.input_tokens > 0  # the calls made before it count all the same


def test_ended_experiments_are_pruned_after_runs_keep_days(product_type, settings):
    from datetime import timedelta

    from django.utils import timezone

    from jobs.retention import experiments_prune

    settings.EXPERIMENT_CHUNK_SIZE = 3
    workflow, _, _ = make_versions(product_type)
    ids = make_entities(product_type, 5)
    steps = [{"id": "pub", "type": "publish", "config": {}}]
    version = workflow_update(workflow_id=workflow.pk, steps=steps, draft=True).versions.get(
        number=3
    )
    old, recent, running = (
        services.experiment_start(
            workflow=workflow, baseline=version, candidate=version, scorers=[], entity_ids=ids
        )
        for _ in range(3)
    )
    experiment_run_inline(old)
    experiment_run_inline(recent)
    for experiment in (old, recent):
        experiment_log(experiment.pk, "info", "A line.", entity_ids=ids[:2])
    long_ago = timezone.now() - timedelta(days=settings.RUNS_KEEP_DAYS + 1)
    Experiment.objects.filter(pk__in=[old.pk, running.pk]).update(completed_at=long_ago)
    batch = experiments_prune(now=timezone.now(), limit=1000)
    assert batch.deleted == 5 + 2 + 2  # its results, its log, itself and its job
    assert set(ExperimentLog.objects.values_list("experiment_id", flat=True)) == {recent.pk}
    assert set(Experiment.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert Job.objects.filter(experiment=recent).exists()


def test_an_entity_deleted_meanwhile_fails_both_sides_and_the_experiment_ends(
    product_type, openai_server, settings
):
    settings.EXPERIMENT_CHUNK_SIZE = 5
    workflow, baseline, candidate = make_versions(product_type)
    ids = make_entities(product_type, 6)
    experiment = services.experiment_start(
        workflow=workflow,
        baseline=baseline,
        candidate=candidate,
        scorers=SCORERS_OF_EACH_TYPE,
        entity_ids=ids,
    )
    Entity.objects.filter(pk=ids[2]).delete()
    experiment = experiment_run_inline(experiment)
    assert experiment.status == ExperimentStatus.COMPLETED and experiment.done == 6
    gone = experiment.results.get(entity_id=ids[2])
    assert gone.baseline["outcome"] == gone.candidate["outcome"] == "failed"
    assert "deleted" in gone.candidate["error"]
    # Its sides never ran: the arms' mean time is the five others' (it counted them as 0 s).
    arms = summaries.arms_summary(experiment)
    for arm in ("baseline", "candidate"):
        ran = [r.candidate if arm == "candidate" else r.baseline for r in experiment.results.all()]
        seconds = [side["seconds"] for side in ran if side["steps"]]
        assert len(seconds) == 5 and arms[arm]["failed"] == 1
        assert arms[arm]["meanSeconds"] == round(sum(seconds) / 5, 3)


def test_a_judge_in_score_mode_scores_each_side(product_type, openai_server, settings):
    settings.EXPERIMENT_CHUNK_SIZE = 10

    def decide(request):
        prompt = request["messages"][-1]["content"]
        if "<answer>" in prompt:  # a longer answer scores higher
            long = "longer" in prompt.split("<answer>")[1]
            return Reply(text=json.dumps({"score": 5 if long else 2, "reason": "length"}))
        if prompt.startswith("LONG"):
            return Reply(text="A much longer and more detailed description.")
        return Reply(text="Short one.")

    openai_server.decide = decide
    workflow, baseline, candidate = make_versions(product_type)
    ids = make_entities(product_type, 10)
    scorer = {
        "type": "judge",
        "name": "score",
        "mode": "score",
        "instructions": "Describe {{ entity.title }}.",
        "provider": "openai",
    }
    experiment = experiment_run_inline(
        services.experiment_start(
            workflow=workflow,
            baseline=baseline,
            candidate=candidate,
            scorers=[scorer],
            entity_ids=ids,
        )
    )
    [score] = summaries.scores_summary(experiment)
    assert (score["baseline"], score["candidate"], score["wins"]) == (2, 5, 10)
    verdict = experiment.results.first().verdicts[0]
    assert verdict["candidate"] == {"score": 5, "reason": "length"}


def test_a_judge_that_fails_is_the_verdicts_error(product_type, openai_server, settings):
    settings.EXPERIMENT_CHUNK_SIZE = 10
    workflow, baseline, candidate = make_versions(product_type)
    ids = make_entities(product_type, 3)

    def decide(request):
        prompt = request["messages"][-1]["content"]
        return Reply(text="not json") if "<A>" in prompt else Reply(text="Text.")

    openai_server.decide = decide
    experiment = experiment_run_inline(
        services.experiment_start(
            workflow=workflow,
            baseline=baseline,
            candidate=candidate,
            scorers=[SCORERS_OF_EACH_TYPE[1]],
            entity_ids=ids,
        )
    )
    assert experiment.status == ExperimentStatus.COMPLETED
    verdict = experiment.results.first().verdicts[0]
    assert "not valid JSON" in verdict["error"]
    [score] = summaries.scores_summary(experiment)
    assert score["wins"] == score["losses"] == score["ties"] == 0


def test_a_chunk_whose_every_delivery_died_is_given_up_without_calling_a_model_again(
    product_type, openai_server, settings
):
    settings.EXPERIMENT_CHUNK_SIZE = 4
    settings.RUN_MAX_ATTEMPTS = 2
    workflow, baseline, candidate = make_versions(product_type)
    ids = make_entities(product_type, 6)
    answer_by_prompt(openai_server)
    experiment = services.experiment_start(
        workflow=workflow, baseline=baseline, candidate=candidate, scorers=[], entity_ids=ids
    )
    # Two deliveries of chunk 0 die in the middle of its steps (a worker killed each time).
    with mock.patch.object(services, "steps_run", side_effect=SystemExit("killed")):
        for _ in range(2):
            with pytest.raises(SystemExit):
                services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=0)
    calls = len(openai_server.requests)
    # A third delivery right away leaves the chunk to the second, which may still be running.
    services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=0)
    assert len(openai_server.requests) == calls and not experiment.results.exists()
    # Once the last delivery started RUN_STALL_AFTER_S ago, the next gives them up.
    _last_delivery_long_ago(experiment, "0", settings)
    services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=0)
    assert len(openai_server.requests) == calls  # given up: no model called again
    services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=1)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.COMPLETED and experiment.done == 6
    counts = {chunk: entry["count"] for chunk, entry in experiment.chunk_deliveries.items()}
    assert counts == {"0": 3, "1": 1}
    given_up = list(experiment.results.filter(entity_id__in=ids[:4]).order_by("position"))
    assert [r.position for r in given_up] == [0, 1, 2, 3]
    for result in given_up:
        for side in (result.baseline, result.candidate):
            assert side["outcome"] == "failed"
            assert side["error"].startswith("Gave up after 2 attempts: every delivery of this")
        assert not result.verdicts and not result.regressed
    for result in experiment.results.filter(entity_id__in=ids[4:]):
        assert result.baseline["outcome"] == result.candidate["outcome"] == "completed"
    arms = summaries.arms_summary(experiment)
    assert arms["baseline"]["failed"] == arms["candidate"]["failed"] == 4
    # Its log names each entity given up.
    lines = experiment.logs.order_by("entity_id")
    assert [line.entity_id for line in lines] == sorted(ids[:4])
    assert {(line.level, line.message[:27]) for line in lines} == {
        ("error", "Both sides: Gave up after 2")
    }
    # A delivery once every row is written counts nothing more.
    services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=0)
    experiment.refresh_from_db()
    assert experiment.chunk_deliveries["0"]["count"] == 3


def test_a_count_of_done_taken_before_another_chunks_rows_does_not_lower_it(
    product_type, openai_server, settings
):
    settings.EXPERIMENT_CHUNK_SIZE = 1
    workflow, baseline, candidate = make_versions(product_type)
    answer_by_prompt(openai_server)
    experiment = services.experiment_start(
        workflow=workflow,
        baseline=baseline,
        candidate=candidate,
        scorers=[],
        entity_ids=make_entities(product_type, 2),
    )
    for chunk in (0, 1):
        services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=chunk)
    experiment.refresh_from_db()
    assert (experiment.status, experiment.done) == (ExperimentStatus.COMPLETED, 2)
    # The first chunk's recount, taken before the second's row was committed, lands last.
    second = experiment.results.get(position=1)
    second.delete()
    services.experiment_end_if_done(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert (experiment.status, experiment.done) == (ExperimentStatus.COMPLETED, 2)


def _last_delivery_long_ago(experiment, chunk: str, settings) -> None:
    from datetime import timedelta

    deliveries = Experiment.objects.get(pk=experiment.pk).chunk_deliveries
    at = timezone.now() - timedelta(seconds=settings.RUN_STALL_AFTER_S + 1)
    deliveries[chunk]["at"] = at.isoformat()
    Experiment.objects.filter(pk=experiment.pk).update(chunk_deliveries=deliveries)


def test_a_chunk_given_up_after_a_cancel_writes_nothing(product_type, openai_server, settings):
    settings.EXPERIMENT_CHUNK_SIZE = 4
    settings.RUN_MAX_ATTEMPTS = 1
    workflow, baseline, candidate = make_versions(product_type)
    experiment = services.experiment_start(
        workflow=workflow,
        baseline=baseline,
        candidate=candidate,
        scorers=[],
        entity_ids=make_entities(product_type, 4),
    )
    killed = mock.patch.object(services, "steps_run", side_effect=SystemExit("killed"))
    with killed, pytest.raises(SystemExit):
        services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=0)
    _last_delivery_long_ago(experiment, "0", settings)
    experiment.refresh_from_db()
    # The cancel is asked while the delivery that gives up is on its way (after its start).
    with mock.patch.object(
        services, "_chunk_delivery", side_effect=lambda *args: _cancel_then(experiment, args)
    ):
        services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=0)
    assert not experiment.results.exists() and not experiment.logs.exists()


def _cancel_then(experiment, args):
    Experiment.objects.filter(pk=experiment.pk).update(cancel_requested_at=timezone.now())
    return services.GIVE_UP


def test_a_stalled_experiment_has_its_unfinished_chunks_queued_again(
    product_type, openai_server, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from jobs import queue

    settings.EXPERIMENT_CHUNK_SIZE = 4
    workflow, baseline, candidate = make_versions(product_type)
    ids = make_entities(product_type, 10)
    experiment = services.experiment_start(
        workflow=workflow, baseline=baseline, candidate=candidate, scorers=[], entity_ids=ids
    )
    services.experiment_chunk_execute(experiment_id=experiment.pk, chunk=1)
    sent = []
    monkeypatch.setattr(
        queue, "experiment_chunks_enqueue", lambda pk, count=0, *, chunks=(): sent.append(chunks)
    )
    assert services.experiments_resume_stalled(stalled_after=timedelta(hours=1)) == 0
    long_ago = experiment.created_at - timedelta(hours=2)
    Experiment.objects.filter(pk=experiment.pk).update(heartbeat_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.experiments_resume_stalled(stalled_after=timedelta(hours=1)) == 2
    assert sent == [[0, 2]]
    # Taken: the next beat within the period queues nothing again.
    assert services.experiments_resume_stalled(stalled_after=timedelta(hours=1)) == 0


def test_an_experiment_job_ended_by_a_worker_behind_does_not_complete_before_it_started(
    api, product_type
):
    """Started by a chunk's worker whose clock is ahead, ended by one on time."""
    workflow, baseline, candidate = make_versions(product_type)
    with mock.patch("jobs.experiments.services.transaction.on_commit"):
        experiment = services.experiment_start(
            workflow=workflow,
            baseline=baseline,
            candidate=candidate,
            scorers=SCORERS_OF_EACH_TYPE[:1],
            entity_ids=make_entities(product_type, 1),
        )
    # The first chunk's worker, 2 s ahead, starts it; every entity has its result.
    ahead = timezone.now() + timedelta(seconds=2)
    Experiment.objects.filter(pk=experiment.pk).update(
        status=ExperimentStatus.RUNNING, started_at=ahead, total=0
    )
    services.experiment_end_if_done(experiment_id=experiment.pk)  # a worker on time
    ended = Experiment.objects.get(pk=experiment.pk)
    assert ended.status == ExperimentStatus.COMPLETED
    job = api.get(f"/api/v1/jobs/{ended.job.pk}").json()
    assert job["completedAt"] >= job["startedAt"], job


@pytest.mark.django_db(transaction=True)
def test_two_human_picks_at_once_on_an_ended_experiment_both_count_in_its_summary(
    product_type, openai_server, settings
):
    """Two people pick in the same queue at the same moment (scoring happens after the end,
    when the summary is stored): the summary stored last counts both picks, whichever of
    them computed it first."""
    settings.EXPERIMENT_CHUNK_SIZE = 5
    experiment = _started_unqueued(
        product_type, openai_server, [{"type": "human", "name": "people"}], 2
    )
    experiment = experiment_run_inline(experiment)
    first, second = experiment.results.order_by("position")
    computed, stored = threading.Event(), threading.Event()
    real_scores = summaries.scores_summary

    def slow_for_the_first(of):
        scores = real_scores(of)
        if threading.current_thread() is picker:  # computed before the second pick's commit
            computed.set()
            stored.wait(timeout=3)
        return scores

    def pick(result):
        try:
            human.human_decide(
                experiment_id=experiment.pk,
                result_id=result.pk,
                scorer="people",
                choice="tie",
                comment="",
                user_id=None,
            )
        finally:
            connection.close()

    with mock.patch.object(summaries, "scores_summary", side_effect=slow_for_the_first):
        picker = threading.Thread(target=pick, args=(first,))
        picker.start()
        assert computed.wait(timeout=10)
        pick_second = threading.Thread(target=pick, args=(second,))
        pick_second.start()
        pick_second.join(timeout=10)
        stored.set()
        picker.join(timeout=10)
        pick_second.join(timeout=10)
    [score] = Experiment.objects.get(pk=experiment.pk).summary["scores"]
    assert score["ties"] == 2, score
