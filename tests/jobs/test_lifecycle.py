"""A run's status moves in one place (jobs/lifecycle.py): each move checked against the
transitions allowed, with its timestamps, log line and callback."""

from unittest import mock

import pytest

from jobs import queue
from jobs.cancel import run_cancel
from jobs.lifecycle import TRANSITIONS, run_end_if_done, run_mark_running
from jobs.models import Run, RunLog, RunStatus
from tests.factories import make_entities, make_workflow, start_run

pytestmark = pytest.mark.django_db

TIDY = {
    "id": "tidy",
    "type": "transform",
    "config": {"operations": [{"op": "set", "field": "slug", "value": "x"}]},
}


@pytest.fixture
def run(product_type):
    with mock.patch("jobs.queue.chunks_enqueue"):
        return start_run(
            make_workflow(product_type, [TIDY]),
            make_entities(product_type, 3),
            callback_url="https://example.com/done",
        )


def _callbacks_queued(callbacks) -> int:
    return sum(1 for c in callbacks if getattr(c, "func", None) is queue.callback_enqueue)


def test_an_ended_run_moves_nowhere():
    assert set(TRANSITIONS) == set(RunStatus.open())
    assert not any(status in TRANSITIONS for status in RunStatus.ended())


def test_a_run_ends_once_only_when_its_items_add_up_and_calls_back(
    run, django_capture_on_commit_callbacks
):
    assert run_mark_running(run_id=run.pk) is True
    assert run_mark_running(run_id=run.pk) is False  # once
    Run.objects.filter(pk=run.pk).update(completed=2)
    assert run_end_if_done(run_id=run.pk) is False  # one item is still open
    Run.objects.filter(pk=run.pk).update(completed=2, failed=1)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert run_end_if_done(run_id=run.pk) is True
        assert run_end_if_done(run_id=run.pk) is False  # it ends once
    assert _callbacks_queued(callbacks) == 1
    ended = Run.objects.get(pk=run.pk)
    assert ended.status == "failed" and ended.error == "1 of 3 entities failed."
    assert ended.started_at <= ended.completed_at
    assert RunLog.objects.filter(run=run, message__startswith="Run failed: 2 completed").exists()


def test_a_run_cancelled_before_it_started_has_both_timestamps_and_calls_back(
    run, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        cancelled = run_cancel(run_id=run.pk, cancelled_by="boss")
    assert (cancelled.status, cancelled.cancelled, cancelled.error) == (
        "cancelled",
        3,
        "Cancelled by boss.",
    )
    assert cancelled.started_at is not None and cancelled.completed_at is not None
    assert cancelled.cancel_requested_at is not None
    assert _callbacks_queued(callbacks) == 1
    # A chunk delivered late finds the run ended: nothing moves it again.
    assert run_mark_running(run_id=run.pk) is False
    assert run_end_if_done(run_id=run.pk) is False
    assert Run.objects.get(pk=run.pk).status == "cancelled"
