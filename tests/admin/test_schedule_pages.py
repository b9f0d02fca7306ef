"""The admin's schedules: workflows' periodic tasks read-only and linked to the workflow,
each tick's outcome, schedules edited through the workflow, runs filtered by trigger."""

from datetime import UTC, datetime

import pytest
from django.contrib.admin.utils import quote
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from jobs.schedules import schedule_fire, task_name
from tests.factories import make_entities, make_workflow, start_run

pytestmark = pytest.mark.django_db

PUBLISH = [{"type": "publish", "config": {}}]
NIGHTLY = {"on": "schedule", "cron": "0 3 * * *"}
AT_3 = datetime(2026, 12, 3, 3, 0, 5, tzinfo=UTC)


def test_a_workflow_s_periodic_task_is_shown_read_only_with_the_rule_and_its_workflow(
    staff, product_type
):
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    task = PeriodicTask.objects.get(name=task_name(workflow.pk, 0))
    listing = staff.get("/admin/django_celery_beat/periodictask/").content.decode()
    link = reverse("admin:workflows_workflow_change", args=[quote(workflow.pk)])
    assert task.name in listing and f'<a href="{link}">{workflow.pk}</a>' in listing
    page = staff.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
    html = page.content.decode()
    assert "edit the cron, time zone or filter in the workflow&#x27;s triggers" in html
    assert 'name="_save"' not in html  # no form to save: read-only
    response = staff.post(
        f"/admin/django_celery_beat/periodictask/{task.pk}/change/", {"name": "x"}
    )
    assert response.status_code == 403
    assert PeriodicTask.objects.get(pk=task.pk).name == task.name
    delete = staff.post(f"/admin/django_celery_beat/periodictask/{task.pk}/delete/", {"post": 1})
    assert delete.status_code == 403 and PeriodicTask.objects.filter(pk=task.pk).exists()


def test_the_bulk_actions_leave_workflows_periodic_tasks_alone(staff, product_type):
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    own = PeriodicTask.objects.create(name="by-hand", task="jobs.tasks.tick_waits", interval=every)
    ids = list(PeriodicTask.objects.values_list("pk", flat=True))
    staff.post(
        "/admin/django_celery_beat/periodictask/",
        {"action": "disable_tasks", "_selected_action": ids},
    )
    assert PeriodicTask.objects.get(name=task_name(workflow.pk, 0)).enabled
    assert not PeriodicTask.objects.get(pk=own.pk).enabled  # others stay django-celery-beat's


def test_run_selected_tasks_leaves_workflows_schedules_alone_saying_how_to_run_one(
    staff, product_type
):
    """A schedule's task fires the tick it is due at: run by hand from the list, it started
    a run for the schedule's previous tick. The action leaves it alone and says how to run
    the workflow now; the other tasks still run."""
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    managed = PeriodicTask.objects.get(name=task_name(workflow.pk, 0))
    page = staff.post(
        "/admin/django_celery_beat/periodictask/",
        {"action": "run_tasks", "_selected_action": [managed.pk]},
        follow=True,
    )
    shown = [str(message) for message in page.context["messages"]]
    assert any("1 workflow schedule(s) left alone" in text for text in shown), shown
    assert not any("successfully run" in text for text in shown), shown


def _form(workflow, triggers: str) -> dict:
    """The workflow's change form as the page shows it, with `triggers` typed in."""
    return {
        "name": workflow.name,
        "description": "",
        "status": "active",
        "triggers": triggers,
        "steps-TOTAL_FORMS": "1",
        "steps-INITIAL_FORMS": "1",
        "steps-0-id": workflow.steps.get().pk,
        "steps-0-workflow": workflow.pk,
        "steps-0-position": "0",
        "steps-0-step_id": workflow.steps.get().step_id,
        "steps-0-type": "publish",
        "steps-0-config": "{}",
        "versions-TOTAL_FORMS": "0",
        "versions-INITIAL_FORMS": "0",
    }


def test_editing_the_schedule_in_the_workflow_form_updates_its_periodic_task(staff, product_type):
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    page = staff.get(f"/admin/workflows/workflow/{workflow.pk}/change/").content.decode()
    assert "Schedules are fired by celery beat" in page
    triggers = '[{"on": "schedule", "cron": "15 4 * * *", "timezone": "Asia/Tokyo"}]'
    response = staff.post(
        f"/admin/workflows/workflow/{workflow.pk}/change/", _form(workflow, triggers)
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    crontab = PeriodicTask.objects.get(name=task_name(workflow.pk, 0)).crontab
    assert (crontab.minute, crontab.hour, str(crontab.timezone)) == ("15", "4", "Asia/Tokyo")


@pytest.mark.parametrize(
    ("triggers", "said"),
    [
        ('[{"on": "schedule", "cron": "61 * * * *"}]', "triggers[0].cron"),
        ('[{"on": "schedule", "cron": "0 3 * * *", "timezone": "Europe"}]', "triggers[0].timezone"),
        ('[{"on": "entity.deleted"}]', "triggers[0].on"),
        ('{"on": "entity.created"}', "triggers"),
        # longer than beat's column (minute: 240 characters): a form error, not a 500
        (
            '[{"on": "schedule", "cron": "' + ",".join(["0"] * 121) + ' * * * *"}]',
            "triggers[0].cron",
        ),
        (
            '[{"on": "schedule", "cron": "0 3 * * *", "timezone": "' + "x" * 64 + '"}]',
            "triggers[0].timezone",
        ),
        ('[{"on": "entity.updated", "fields": ["' + "x" * 201 + '"]}]', "triggers[0].fields[0]"),
        (
            '[{"on": "entity.updated", "fields": '
            + str([f"f{i}" for i in range(101)]).replace("'", '"')
            + "}]",
            "triggers[0].fields",
        ),
        # identical schedules would start the same run twice
        (
            '[{"on": "schedule", "cron": "* * * * *"}, {"on": "schedule", "cron": "* * * * *"}]',
            "triggers[1]",
        ),
    ],
)
def test_a_bad_trigger_in_the_workflow_form_is_shown_on_the_form_and_changes_nothing(
    staff, product_type, triggers, said
):
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    response = staff.post(
        f"/admin/workflows/workflow/{workflow.pk}/change/", _form(workflow, triggers)
    )
    assert response.status_code == 200  # the form again, with the error, not a 500
    assert said in response.content.decode()
    workflow.refresh_from_db()
    assert workflow.triggers == [NIGHTLY]
    crontab = PeriodicTask.objects.get(name=task_name(workflow.pk, 0)).crontab
    assert (crontab.minute, crontab.hour) == ("0", "3")


def test_schedule_fires_list_each_tick_with_its_outcome_and_run(staff, product_type):
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    make_entities(product_type, 2)
    fire = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3)
    html = staff.get("/admin/jobs/schedulefire/").content.decode()
    assert "started" in html and fire.run_id in html
    assert (
        staff.get("/admin/jobs/schedulefire/?outcome=skipped").content.decode().count(fire.run_id)
        == 0
    )


def test_the_run_list_filters_by_what_started_the_run(staff, product_type):
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    ids = make_entities(product_type, 2)
    by_api = start_run(workflow, ids)
    scheduled = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3).run
    html = staff.get("/admin/jobs/run/?trigger=schedule").content.decode()
    assert scheduled.pk in html and by_api.pk not in html
    html = staff.get("/admin/jobs/run/?trigger=api").content.decode()
    assert by_api.pk in html and scheduled.pk not in html
