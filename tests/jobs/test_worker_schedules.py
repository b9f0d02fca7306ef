"""Schedule triggers with a real celery beat (django-celery-beat's DatabaseScheduler) and a
real worker: beat sends the fire, the worker starts the run over what matches, and the next
tick is skipped while that run is still going.

Cron has minutes, not seconds, so waiting for a schedule's first tick could take a minute.
Instead the schedule is made overdue, as if beat had been down at its last tick (its
`last_run_at` two minutes back): beat fires it as soon as it starts, with the production
scheduler and crontab, nothing stood in. The skip waits for the next real minute's tick."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from jobs.models import Run, RunItem, RunLog, ScheduleFire
from tests.factories import make_entities, make_workflow
from tests.workers import start_beat, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]

EVERY_MINUTE = {"on": "schedule", "cron": "* * * * *", "filter": {"status": "draft"}}
# A review holds the run open: its entities wait (holding no worker) for a person.
STEPS = [
    {"id": "check", "type": "review", "config": {"instructions": "Check {{ entity.title }}"}},
    {"id": "pub", "type": "publish", "config": {}},
]


def _overdue(workflow) -> None:
    PeriodicTask.objects.filter(name__startswith=f"workflow:{workflow.pk}:").update(
        last_run_at=timezone.now() - timedelta(minutes=2)
    )


@pytest.mark.long
def test_beat_fires_a_schedule_over_what_matches_then_skips_it_while_its_run_is_open(
    celery_worker, api, product_type, tmp_path
):
    workflow = make_workflow(product_type, STEPS, triggers=[EVERY_MINUTE])
    idle = make_workflow(product_type, STEPS, triggers=[EVERY_MINUTE], status="draft")
    ids = make_entities(product_type, 5)  # made after the schedule: matched at fire time
    _overdue(workflow)
    _overdue(idle)
    log_start = celery_worker.log_size()
    beat = start_beat(tmp_path / "beat.log")
    try:
        fire = wait_until(
            lambda: ScheduleFire.objects.filter(workflow=workflow).first(), "beat's fire", 60
        )
        assert fire.outcome == "started", fire.message
        run = fire.run
        wait_until(lambda: Run.objects.get(pk=run.pk).waiting == 5, "5 entities waiting", 60)
        assert sorted(RunItem.objects.filter(run=run).values_list("entity_id", flat=True)) == (
            sorted(ids)
        )
        assert run.trigger["type"] == "schedule" and run.trigger["cron"] == "* * * * *"
        assert "Sending due task workflow:" in beat.log_text()

        # The next minute's tick: the run is still open (its entities wait), so it is skipped.
        skipped = wait_until(
            lambda: ScheduleFire.objects.filter(workflow=workflow, outcome="skipped").first(),
            "the next tick",
            90,
        )
        assert skipped.run_id == run.pk and skipped.tick > fire.tick
        warning = RunLog.objects.get(run=run, level="warning").message
        status = Run.objects.get(pk=run.pk).status
        assert status in ("pending", "running")
        assert f"skipped: the run it started before, {run.pk}, is still {status}" in warning
        wait_until(lambda: "skipped: the run" in celery_worker.log_text(log_start), "log", 10)
        assert Run.objects.filter(workflow=workflow).count() == 1
        assert not Run.objects.filter(workflow=idle).exists()  # not active: never sent
        assert not ScheduleFire.objects.filter(workflow=idle).exists()

        # Removing the trigger deletes its periodic task, and beat reads its schedule again.
        changes = beat.log_text().count("DatabaseScheduler: Schedule changed.")
        response = api.patch(f"/api/v1/workflows/{workflow.pk}", {"triggers": []})
        assert response.status_code == 200
        assert not PeriodicTask.objects.filter(name__startswith=f"workflow:{workflow.pk}:")
        wait_until(
            lambda: beat.log_text().count("DatabaseScheduler: Schedule changed.") > changes,
            "beat to read the changed schedule",
            10,
        )
    finally:
        beat.stop()
