"""Retention: ended runs older than RUNS_KEEP_DAYS are pruned with everything of theirs, in
bounded batches (each its own transaction), by a beat task that queues itself again while
more is left; open and recent runs are kept; idempotency records go after
IDEMPOTENCY_KEEP_HOURS."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from config.api.models import IdempotencyRecord
from jobs import queue
from jobs.engine.waits import run_waits_resume
from jobs.models import (
    AiBatch,
    AiBatchRequest,
    Job,
    Review,
    ReviewInstructions,
    Run,
    RunItem,
    RunLog,
    ScheduleFire,
    Wait,
)
from jobs.retention import RUN_ROWS, pruners, retention_prune, runs_prune
from jobs.waits.review.services import reviews_decide
from tests.factories import make_entities, make_workflow, run_inline, start_run
from workflows.models import LocalBatch
from workflows.providers import GenerationRequest, provider_get
from workflows.providers.base import BatchItem

pytestmark = pytest.mark.django_db

REVIEWED = [
    {
        "id": "tidy",
        "type": "transform",
        "config": {"operations": [{"op": "set", "field": "slug", "value": "{{ entity.title }}"}]},
    },
    {"id": "check", "type": "review", "config": {"instructions": "Is the slug right?"}},
    {"id": "pub", "type": "publish", "config": {}},
]
RUN_MODELS = [
    Run,
    Job,
    RunItem,
    RunLog,
    Wait,
    Review,
    ReviewInstructions,
    AiBatch,
    AiBatchRequest,
    ScheduleFire,
]


def _rows(run_ids) -> dict[str, int]:
    """Every row of the runs, per model."""
    return {
        "Run": Run.objects.filter(pk__in=run_ids).count(),
        "Job": Job.objects.filter(run_id__in=run_ids).count(),
        "RunItem": RunItem.objects.filter(run_id__in=run_ids).count(),
        "RunLog": RunLog.objects.filter(run_id__in=run_ids).count(),
        "Wait": Wait.objects.filter(run_id__in=run_ids).count(),
        "Review": Review.objects.filter(run_id__in=run_ids).count(),
        "ReviewInstructions": ReviewInstructions.objects.filter(run_id__in=run_ids).count(),
        "AiBatch": AiBatch.objects.filter(run_id__in=run_ids).count(),
        "AiBatchRequest": AiBatchRequest.objects.filter(batch__run_id__in=run_ids).count(),
        "ScheduleFire": ScheduleFire.objects.filter(run_id__in=run_ids).count(),
    }


def _all_rows() -> int:
    return sum(model.objects.count() for model in RUN_MODELS)


def _reviewed_run(workflow, product_type, n: int, *, decided: bool = True) -> Run:
    """A run whose entities waited for review (approved, resumed and published unless not
    `decided`), with a provider batch and a schedule fire of its own."""
    run = start_run(workflow, make_entities(product_type, n))
    run_inline(run.pk)
    waits = list(Wait.objects.filter(run=run).order_by("pk"))
    batch = AiBatch.objects.create(run=run, step_id="check", provider="local", total=1)
    AiBatchRequest.objects.create(
        id=waits[0].pk, wait=waits[0], batch=batch, request={"provider": "local"}
    )
    ScheduleFire.objects.create(
        workflow=workflow,
        trigger_index=0,
        cron="0 3 * * *",
        tick=timezone.now() - timedelta(days=Run.objects.count()),
        outcome=ScheduleFire.Outcome.STARTED,
        run=run,
    )
    if decided:
        reviewer = get_user_model().objects.create_superuser(f"boss{run.pk}")
        ids = list(Review.objects.filter(run=run).values_list("pk", flat=True))
        reviews_decide(review_ids=ids, decision="approve", user=reviewer)
        run_waits_resume(run_id=run.pk)
        run_inline(run.pk)
    run.refresh_from_db()
    return run


def _age(run: Run, days: int) -> None:
    Run.objects.filter(pk=run.pk).update(completed_at=timezone.now() - timedelta(days=days))


@pytest.fixture
def workflow(product_type):
    return make_workflow(product_type, REVIEWED)


def test_old_ended_runs_are_pruned_with_all_their_rows_open_and_recent_ones_kept(
    workflow, product_type
):
    old = _reviewed_run(workflow, product_type, 3)
    older = _reviewed_run(workflow, product_type, 2)
    recent = _reviewed_run(workflow, product_type, 2)
    waiting = _reviewed_run(workflow, product_type, 2, decided=False)
    assert (old.status, recent.status, waiting.status) == ("completed", "completed", "running")
    _age(old, 91)
    _age(older, 400)
    _age(recent, 89)
    Run.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(days=400))
    kept = {run.pk: _rows([run.pk]) for run in (recent, waiting)}
    gone = _rows([old.pk, older.pk])
    assert all(gone.values()), gone  # every kind of row is there to prune

    pruned = retention_prune()

    assert pruned.rows["runs_prune"] == sum(gone.values()) and not pruned.more
    assert not any(_rows([old.pk, older.pk]).values())
    assert {run_id: _rows([run_id]) for run_id in kept} == kept
    assert retention_prune().rows["runs_prune"] == 0  # again: nothing more to do


def test_pruning_goes_in_batches_of_at_most_the_limit_each_its_own_transaction(
    workflow, product_type
):
    runs = [_reviewed_run(workflow, product_type, 4) for _ in range(3)]
    for run in runs:
        _age(run, 100)
    total = _all_rows()
    batches = []
    while True:
        before = _all_rows()
        pruned = retention_prune(limit=7)
        deleted = before - _all_rows()
        assert deleted == pruned.rows["runs_prune"] <= 7
        batches.append(deleted)
        if not pruned.more:
            break
    assert sum(batches) == total and _all_rows() == 0
    assert len(batches) >= total // 7
    # full but for the run and its job, deleted together in the next batch
    assert all(b > 7 - RUN_ROWS for b in batches[:-1])


def test_a_run_an_open_retry_reads_is_kept_until_the_retry_ends(workflow, product_type):
    old = _reviewed_run(workflow, product_type, 2)
    _age(old, 100)
    retry = _reviewed_run(workflow, product_type, 1, decided=False)
    Run.objects.filter(pk=retry.pk).update(retry_of=old)
    assert retention_prune().rows["runs_prune"] == 0
    Run.objects.filter(pk=retry.pk).update(status="completed", completed_at=timezone.now())
    assert retention_prune().rows["runs_prune"] > 0
    assert not Run.objects.filter(pk=old.pk).exists()
    retry.refresh_from_db()
    assert retry.retry_of_id is None  # the retry keeps its own rows


def test_runs_keep_days_is_a_setting(workflow, product_type, settings):
    run = _reviewed_run(workflow, product_type, 1)
    _age(run, 8)
    assert runs_prune(now=timezone.now(), limit=1000).deleted == 0
    settings.RUNS_KEEP_DAYS = 7
    assert runs_prune(now=timezone.now(), limit=1000).deleted > 0
    assert not Run.objects.filter(pk=run.pk).exists()


def test_idempotency_records_are_deleted_after_their_hours(settings):
    user = get_user_model().objects.create_user("writer")
    now = timezone.now()
    for hours in (1, 23, 25, 100):
        IdempotencyRecord.objects.create(
            user=user,
            key=f"k{hours}",
            method="POST",
            path="/api/v1/entities",
            request_hash="x",
            status_code=201,
            response_body={},
            created_at=now - timedelta(hours=hours),
        )
    assert retention_prune(limit=1).rows["idempotency_records_prune"] == 1
    assert retention_prune().rows["idempotency_records_prune"] == 1
    assert sorted(IdempotencyRecord.objects.values_list("key", flat=True)) == ["k1", "k23"]
    settings.IDEMPOTENCY_KEEP_HOURS = 2
    retention_prune()
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["k1"]


def test_the_local_providers_batches_go_once_their_batch_of_ours_is_pruned_with_its_run(
    workflow, product_type
):
    old = _reviewed_run(workflow, product_type, 2)
    recent = _reviewed_run(workflow, product_type, 2)
    local = provider_get("local")
    for run in (old, recent):  # what submitting their batches to the local stand-in leaves
        local.batch_submit(
            [BatchItem("x", GenerationRequest(prompt="hi", model="local"))],
            idempotency_key=AiBatch.objects.get(run=run).pk,
        )
    local.batch_submit(
        [BatchItem("x", GenerationRequest(prompt="hi", model="local"))], idempotency_key="gone"
    )
    _age(old, 91)
    _age(recent, 89)

    pruned = retention_prune()

    assert pruned.rows["waits_ai_batch_prune"] == 2  # the pruned run's, and one never ours
    assert list(LocalBatch.objects.values_list("idempotency_key", flat=True)) == [
        AiBatch.objects.get(run=recent).pk
    ]
    assert retention_prune().rows["waits_ai_batch_prune"] == 0


def test_beat_runs_the_retention_task_every_hour():
    from jobs.tasks import prune_old_records

    entry = settings.CELERY_BEAT_SCHEDULE["prune-old-records"]
    assert entry == {"task": queue.PRUNE_OLD_RECORDS, "schedule": 3600.0}
    assert prune_old_records.name == queue.PRUNE_OLD_RECORDS
    assert [pruner.__name__ for pruner in pruners()] == [
        "runs_prune",
        "experiments_prune",
        "idempotency_records_prune",
        "entity_revisions_prune",
        "waits_review_prune",
        "waits_ai_batch_prune",
        "waits_delay_prune",
        "waits_event_prune",
    ]


def test_the_task_queues_its_next_batch_while_more_is_left(
    workflow, product_type, settings, monkeypatch
):
    from jobs.tasks import prune_old_records

    _age(_reviewed_run(workflow, product_type, 3), 100)
    settings.RETENTION_BATCH_ROWS = 5
    queued = []
    monkeypatch.setattr(queue, "retention_prune_enqueue", lambda: queued.append(1))
    calls = 0
    while True:  # what the worker does with each task it queued
        before = len(queued)
        prune_old_records()
        calls += 1
        if len(queued) == before:
            break
    assert _all_rows() == 0 and calls == len(queued) + 1 > 3


def test_a_pruned_run_s_delays_and_event_waits_go_with_its_waits(product_type):
    """A delay or an event wait is deleted when it is resolved or cancelled, so an ended run
    keeps none; any left (a run ended another way) goes with its wait, through the ORM's
    cascade: no database key holds them to it (jobs 0032)."""
    from jobs.waits.delay.models import Delay
    from jobs.waits.event.models import EventWait

    steps = [
        {"id": "later", "type": "delay", "config": {"minutes": 60}},
        {"id": "answer", "type": "wait_for_event", "config": {"event": "done", "key": "k"}},
    ]
    delayed = start_run(make_workflow(product_type, steps), make_entities(product_type, 2))
    run_inline(delayed.pk)
    event_steps = steps[1:]
    waiting = start_run(make_workflow(product_type, event_steps), make_entities(product_type, 2))
    run_inline(waiting.pk)
    run_ids = [delayed.pk, waiting.pk]
    assert Delay.objects.filter(run_id=delayed.pk).count() == 2
    assert EventWait.objects.filter(run_id=waiting.pk).count() == 2
    Run.objects.filter(pk__in=run_ids).update(
        status="failed", completed_at=timezone.now() - timedelta(days=400)
    )

    retention_prune()

    assert not any(_rows(run_ids).values())
    assert not Delay.objects.filter(run_id__in=run_ids).exists()
    assert not EventWait.objects.filter(run_id__in=run_ids).exists()
