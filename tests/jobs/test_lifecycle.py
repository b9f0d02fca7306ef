"""A run's status moves in one place (jobs/lifecycle.py): each move checked against the
transitions allowed, with its timestamps, log line and callback."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone

from jobs import queue
from jobs.cancel import run_cancel
from jobs.engine.recovery import runs_callbacks_resend
from jobs.lifecycle import TRANSITIONS, run_end_if_done, run_mark_running
from jobs.models import Run, RunLog, RunStatus
from jobs.services import run_callback_send
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


def _ended(run) -> Run:
    Run.objects.filter(pk=run.pk).update(completed=3)
    assert run_end_if_done(run_id=run.pk) is True
    return Run.objects.get(pk=run.pk)


def test_a_callback_posts_the_run_as_the_api_answers_it(
    run, receiver, allow_loopback, api, django_capture_on_commit_callbacks
):
    """docs/runs.md, Run status: what a callback's receiver gets."""
    Run.objects.filter(pk=run.pk).update(callback_url=receiver.url)
    with django_capture_on_commit_callbacks(execute=False):
        _ended(run)
    run_callback_send(run_id=run.pk, owed=True)
    [sent] = receiver.requests
    assert sent.headers["X-Workflows-Event"] == "run.ended"
    assert sent.json() == api.get(f"/api/v1/workflows/{run.workflow_id}/runs/{run.pk}").json()


def test_a_callback_whose_message_was_lost_is_queued_again_by_beat_once(
    run, receiver, allow_loopback, django_capture_on_commit_callbacks
):
    """The run's end queues its callback once, after COMMIT: a broker's blip then loses it
    for good, unless the run keeps it owed. Beat queues an owed callback again once it is
    RUN_STALL_AFTER_S overdue, one beat at a time; the send clears it."""
    Run.objects.filter(pk=run.pk).update(callback_url=receiver.url)
    with django_capture_on_commit_callbacks(execute=False):  # the message never reaches Redis
        ended = _ended(run)
    assert ended.callback_due_at is not None
    assert runs_callbacks_resend() == 0  # not overdue yet
    Run.objects.filter(pk=run.pk).update(callback_due_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert runs_callbacks_resend() == 1
        assert runs_callbacks_resend() == 0  # taken: the next beat does not queue it twice
    assert _callbacks_queued(callbacks) == 1
    assert RunLog.objects.filter(run=run, message__contains="queued it again").count() == 1
    run_callback_send(run_id=run.pk, owed=True)
    assert len(receiver.requests) == 1
    assert Run.objects.get(pk=run.pk).callback_due_at is None
    # A second message of it (the end's and beat's both delivered) sends nothing more.
    run_callback_send(run_id=run.pk, owed=True)
    assert len(receiver.requests) == 1
    # A message queued by code before the flag (no `owed`) is sent as it was.
    run_callback_send(run_id=run.pk)
    assert len(receiver.requests) == 2


def test_a_database_error_before_the_outcome_is_written_leaves_the_callback_owed(
    run, receiver, allow_loopback, django_capture_on_commit_callbacks, monkeypatch
):
    """The task retries on database errors: the callback must still be owed then."""
    Run.objects.filter(pk=run.pk).update(callback_url=receiver.url)
    with django_capture_on_commit_callbacks(execute=False):
        _ended(run)

    def down(*args, **kwargs):
        raise OperationalError("the server closed the connection")

    with monkeypatch.context() as patched:
        patched.setattr(RunLog.objects, "create", down)
        with pytest.raises(OperationalError):
            run_callback_send(run_id=run.pk, owed=True)
    assert Run.objects.get(pk=run.pk).callback_due_at is not None
    run_callback_send(run_id=run.pk, owed=True)  # the task's retry
    assert len(receiver.requests) == 2 and Run.objects.get(pk=run.pk).callback_due_at is None


def test_a_callback_not_delivered_is_owed_no_longer(run, django_capture_on_commit_callbacks):
    """Its own retries spent (or its URL refused), the outcome is in the run's log: beat does
    not send it again and again."""
    Run.objects.filter(pk=run.pk).update(callback_url="http://127.0.0.1:9/refused")
    with django_capture_on_commit_callbacks(execute=False):
        _ended(run)
    run_callback_send(run_id=run.pk, owed=True)
    assert RunLog.objects.filter(run=run, message__startswith="Callback not delivered").exists()
    assert Run.objects.get(pk=run.pk).callback_due_at is None
    Run.objects.filter(pk=run.pk).update(completed_at=timezone.now() - timedelta(hours=1))
    assert runs_callbacks_resend() == 0


def test_a_run_ended_by_a_worker_whose_clock_is_behind_does_not_complete_before_it_started(
    run,
):
    """The first chunk's worker stamps `startedAt` from its clock; the last chunk's worker,
    another machine 2 s behind, ends the run: `completedAt` is not before `startedAt` (the
    run, and its job, are never served as completed before they started)."""
    real = timezone.now()
    with mock.patch("django.utils.timezone.now", return_value=real):
        assert run_mark_running(run_id=run.pk)
    Run.objects.filter(pk=run.pk).update(completed=3)
    with mock.patch("django.utils.timezone.now", return_value=real - timedelta(seconds=2)):
        assert run_end_if_done(run_id=run.pk)
    ended = Run.objects.get(pk=run.pk)
    assert ended.created_at <= ended.started_at <= ended.completed_at


def test_a_run_started_by_a_worker_whose_clock_is_behind_the_web_does_not_start_before_created(
    run,
):
    with mock.patch(
        "django.utils.timezone.now", return_value=run.created_at - timedelta(seconds=3)
    ):
        assert run_mark_running(run_id=run.pk)
    assert Run.objects.get(pk=run.pk).started_at == run.created_at
