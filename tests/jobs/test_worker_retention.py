"""Retention with a real worker: the task, sent as beat sends it, prunes an old run in
batches of RETENTION_BATCH_ROWS, each batch queueing the next, and keeps a recent one."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs import queue
from jobs.models import Run, RunItem, RunLog
from tests.factories import make_entities, make_workflow, run_inline, start_run
from tests.processes import ManagedProcess, celery_worker_command
from tests.workers import wait_until, worker_env

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


@pytest.fixture
def small_batch_worker(tmp_path):
    worker = ManagedProcess(
        celery_worker_command(1, f"retention-{os.getpid()}@%h"),
        "ready.",
        tmp_path / "worker.log",
        {**worker_env(), "RETENTION_BATCH_ROWS": "5"},
    )
    yield worker
    worker.stop()


def test_the_beat_task_prunes_an_old_run_batch_after_batch(product_type, small_batch_worker):
    workflow = make_workflow(product_type, [{"type": "publish", "config": {}}])
    old, recent = (start_run(workflow, make_entities(product_type, 20)) for _ in range(2))
    for run in (old, recent):
        run_inline(run.pk)
    Run.objects.filter(pk=old.pk).update(completed_at=timezone.now() - timedelta(days=120))
    assert RunItem.objects.filter(run=old).count() == 20

    queue.retention_prune_enqueue()  # as beat sends it

    wait_until(lambda: not Run.objects.filter(pk=old.pk).exists(), "the old run pruned")
    assert not RunItem.objects.filter(run_id=old.pk).exists()
    assert not RunLog.objects.filter(run_id=old.pk).exists()
    assert RunItem.objects.filter(run=recent).count() == 20
    assert Run.objects.get(pk=recent.pk).status == "completed"
