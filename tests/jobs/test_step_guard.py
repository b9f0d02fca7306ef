"""The engine's guard around each step: whatever a step does (raises, raises on a thread,
returns without finishing its entities), no entity ends `completed` by accident, and the
run goes on to the end. Driven in this process (`chunk_execute`), as a worker would."""

import time
from unittest import mock

import pytest
from django.core import mail

from jobs.cancel import run_cancel
from jobs.engine.committer import CANCEL_CHECK_INTERVAL_S
from jobs.models import RunItem, RunLog
from tests.factories import make_entities, make_workflow, run_inline, start_run
from workflows.steps.notify import Notify
from workflows.steps.transform import Transform

pytestmark = pytest.mark.django_db

TIDY = {
    "id": "tidy",
    "type": "transform",
    "config": {"operations": [{"op": "set", "field": "slug", "value": "x"}]},
}
MAIL = {"id": "mail", "type": "notify", "config": {"channel": "email", "to": "a@example.com"}}
PUBLISH = {"id": "pub", "type": "publish", "config": {}}


def _run(product_type, steps, n=3):
    run = start_run(make_workflow(product_type, steps), make_entities(product_type, n))
    run_inline(run.pk)
    run.refresh_from_db()
    return run, list(RunItem.objects.filter(run=run).order_by("pk"))


def test_a_run_without_a_crash_completes_every_entity(product_type):
    run, items = _run(product_type, [TIDY, MAIL, PUBLISH])
    assert (run.status, run.completed, run.failed) == ("completed", 3, 0)
    assert {(i.status, i.error) for i in items} == {("completed", "")}
    assert len(mail.outbox) == 3


@pytest.mark.parametrize(
    ("target", "steps", "failed_at"),
    [
        (mock.patch.object(Transform, "run_batch"), [TIDY, PUBLISH], "tidy"),
        (mock.patch.object(Transform, "run"), [TIDY, PUBLISH], "tidy"),
        # Raised on a sending thread: the notify crash that once left items completed.
        (mock.patch.object(Notify, "run"), [TIDY, MAIL], "mail"),
        (mock.patch.object(Notify, "run"), [MAIL, TIDY, PUBLISH], "mail"),
    ],
)
def test_a_step_that_raises_fails_its_entities_with_the_error_and_a_log_line(
    product_type, target, steps, failed_at
):
    with target as crash:
        crash.side_effect = RuntimeError("boom")
        run, items = _run(product_type, steps)
    assert (run.status, run.completed, run.failed) == ("failed", 0, 3)
    message = f"Internal error in step {failed_at}: RuntimeError: boom"
    assert {(i.status, i.step_id, i.error) for i in items} == {("failed", failed_at, message)}
    logged = RunLog.objects.filter(run=run, level="error", step_id=failed_at, message=message)
    assert logged.count() == 3  # one line per entity, next to its item


def test_a_step_that_returns_without_finishing_its_entities_fails_them(product_type):
    with mock.patch.object(Transform, "run_batch", return_value=None):
        run, items = _run(product_type, [TIDY, PUBLISH])
    assert (run.status, run.failed) == ("failed", 3)
    assert {i.error for i in items} == {"Internal error in step tidy: it did not finish."}


def test_entities_a_cancelled_step_left_behind_end_cancelled_not_completed(product_type):
    """A step that stops starting work once the run is cancelled leaves entities at its
    step; at the last step as at any other, they end cancelled."""
    run = start_run(make_workflow(product_type, [TIDY, MAIL]), make_entities(product_type, 3))

    def cancel_first(states, config, ctx):
        run_cancel(run_id=run.pk)
        time.sleep(CANCEL_CHECK_INTERVAL_S)  # so that the engine's next look sees it

    with mock.patch.object(Notify, "run_batch", side_effect=cancel_first):
        run_inline(run.pk)
    run.refresh_from_db()
    assert (run.status, run.completed, run.failed, run.cancelled) == ("cancelled", 0, 0, 3)
    assert set(RunItem.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}
    assert mail.outbox == []


def test_the_test_endpoint_reports_a_crashed_step_as_failed(api, product_type):
    workflow = make_workflow(product_type, [TIDY, PUBLISH])
    entity_id = make_entities(product_type, 1)[0]
    with mock.patch.object(Transform, "run", side_effect=ValueError("bad")):
        response = api.post(f"/api/v1/workflows/{workflow.pk}/test", {"entityId": entity_id})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed"
    assert body["error"] == "Internal error in step tidy: ValueError: bad"
    assert [(s["stepId"], s["outcome"]) for s in body["steps"]] == [
        ("tidy", "failed"),
        ("pub", "skipped"),
    ]
