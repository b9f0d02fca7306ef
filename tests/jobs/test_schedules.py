"""Schedule triggers: kept as beat's PeriodicTask rows, and the fire (once per tick, skipped
while the schedule's previous run is open, over what matches at fire time)."""

import json
import logging
from datetime import UTC, datetime, timedelta
from importlib import import_module

import pytest
from django_celery_beat.models import PeriodicTask

from jobs.filter_runs import run_items_make
from jobs.models import Run, RunItem, RunLog, ScheduleFire
from jobs.schedules import schedule_digest, schedule_fire, schedule_tick, task_name
from tests.factories import make_entities, make_workflow, run_inline

pytestmark = pytest.mark.django_db

PUBLISH = [{"type": "publish", "config": {}}]
NIGHTLY = {"on": "schedule", "cron": "0 3 * * *", "filter": {"status": "draft"}}
AT_3 = datetime(2026, 12, 3, 3, 0, 20, tzinfo=UTC)  # 20 s after the tick, as beat sends it
NEXT_DAY = AT_3 + timedelta(days=1)


def _create(api, product_type, triggers, **extra):
    body = {"name": "w", "entityTypeId": product_type.pk, "steps": PUBLISH, "triggers": triggers}
    response = api.post("/api/v1/workflows", {**body, **extra})
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _tasks(workflow_id: str) -> list[PeriodicTask]:
    return list(
        PeriodicTask.objects.filter(name__startswith=f"workflow:{workflow_id}:")
        .select_related("crontab")
        .order_by("name")
    )


def _cron(task: PeriodicTask) -> str:
    c = task.crontab
    return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"


def _items(run) -> list[str]:
    run_items_make(run_id=run.pk)
    return sorted(RunItem.objects.filter(run=run).values_list("entity_id", flat=True))


def test_each_schedule_trigger_becomes_a_periodic_task_named_after_workflow_and_trigger(
    api, product_type
):
    triggers = [
        {"on": "entity.created"},
        {"on": "schedule", "cron": "0 3 * * *", "timezone": "Europe/Paris"},
        {"on": "schedule", "cron": "*/5 * * * 1-5"},
    ]
    workflow_id = _create(api, product_type, triggers)
    first, second = _tasks(workflow_id)
    assert (first.name, second.name) == (task_name(workflow_id, 1), task_name(workflow_id, 2))
    assert (_cron(first), str(first.crontab.timezone)) == ("0 3 * * *", "Europe/Paris")
    assert (_cron(second), str(second.crontab.timezone)) == ("*/5 * * * 1-5", "UTC")
    assert first.task == "jobs.tasks.fire_schedule" and first.enabled
    assert json.loads(first.kwargs) == {
        "workflow_id": workflow_id,
        "trigger_index": 1,
        "trigger_digest": schedule_digest(triggers[1]),
    }
    assert workflow_id in first.description


def test_patching_the_cron_updates_its_periodic_task_and_removing_the_trigger_deletes_it(
    api, product_type
):
    workflow_id = _create(api, product_type, [NIGHTLY])
    [task] = _tasks(workflow_id)
    PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=AT_3)
    moved = {**NIGHTLY, "cron": "30 4 * * 1", "timezone": "America/New_York"}
    response = api.patch(f"/api/v1/workflows/{workflow_id}", {"triggers": [moved]})
    assert response.status_code == 200, response.content
    [same] = _tasks(workflow_id)
    assert same.pk == task.pk
    assert (_cron(same), str(same.crontab.timezone)) == ("30 4 * * 1", "America/New_York")
    assert same.last_run_at is None  # the new cron's next tick, not a catch-up of the old
    response = api.patch(f"/api/v1/workflows/{workflow_id}", {"triggers": []})
    assert response.status_code == 200
    assert _tasks(workflow_id) == []


def test_a_periodic_task_is_enabled_only_while_its_workflow_is_active(api, product_type):
    workflow_id = _create(api, product_type, [NIGHTLY], status="draft")
    assert [task.enabled for task in _tasks(workflow_id)] == [False]
    api.patch(f"/api/v1/workflows/{workflow_id}", {"status": "active"})
    assert [task.enabled for task in _tasks(workflow_id)] == [True]
    assert api.delete(f"/api/v1/workflows/{workflow_id}").status_code == 200  # archives
    assert [task.enabled for task in _tasks(workflow_id)] == [False]


def test_a_workflow_saved_again_unchanged_does_not_rewrite_its_periodic_task(product_type):
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    [task] = _tasks(workflow.pk)
    workflow.description = "changed"
    workflow.save()
    [same] = _tasks(workflow.pk)
    assert same.date_changed == task.date_changed  # beat is not told its schedule changed


def test_deleting_a_workflow_deletes_its_periodic_tasks(product_type):
    workflow = make_workflow(
        product_type, PUBLISH, triggers=[NIGHTLY, {**NIGHTLY, "cron": "0 4 * * *"}]
    )
    assert len(_tasks(workflow.pk)) == 2
    workflow.delete()
    assert _tasks(workflow.pk) == []


def test_a_fire_starts_a_run_over_what_matches_the_filter_at_fire_time(product_type):
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    first = make_entities(product_type, 3)
    fire = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3)
    assert fire.outcome == "started"
    assert _items(fire.run) == sorted(first)
    assert fire.run.trigger == {
        "type": "schedule",
        "cron": "0 3 * * *",
        "timezone": "UTC",
        "index": 0,
        "tick": int(datetime(2026, 12, 3, 3, 0, tzinfo=UTC).timestamp() * 1000),
    }
    run_inline(fire.run.pk)  # publishes the three: they no longer match `draft`
    later = make_entities(product_type, 2)
    again = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=NEXT_DAY)
    assert again.outcome == "started"
    assert _items(again.run) == sorted(later)


def test_a_tick_is_skipped_while_the_schedule_s_previous_run_is_open_and_the_skip_is_logged(
    product_type, caplog
):
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    make_entities(product_type, 3)
    started = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3).run
    with caplog.at_level(logging.WARNING, logger="jobs.schedules"):
        skipped = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=NEXT_DAY)
    assert (skipped.outcome, skipped.run_id) == ("skipped", started.pk)
    assert f"the run it started before, {started.pk}, is still pending" in caplog.text
    [line] = RunLog.objects.filter(run=started, level="warning").values_list("message", flat=True)
    assert "Tick 2026-12-04T03:00:00+00:00 of schedule 0 3 * * * skipped" in line
    assert Run.objects.filter(workflow=workflow).count() == 1
    _items(started)
    run_inline(started.pk)
    resumed = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=NEXT_DAY + timedelta(1))
    assert resumed.outcome == "empty"  # ended: the schedule fires again (nothing is a draft)


def test_a_fire_delivered_again_for_the_same_tick_starts_no_second_run(product_type):
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    make_entities(product_type, 2)
    fire = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3)
    _items(fire.run)
    run_inline(fire.run.pk)  # ended: only the tick's record stops a second run
    again = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3 + timedelta(1 / 48))
    assert again.pk == fire.pk  # 03:30 is still the 03:00 tick's: the same record
    assert Run.objects.filter(workflow=workflow).count() == 1
    assert ScheduleFire.objects.count() == 1


def test_only_an_active_workflow_fires(product_type):
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY], status="draft")
    make_entities(product_type, 2)
    assert schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3) is None
    assert not Run.objects.exists() and not ScheduleFire.objects.exists()


def test_a_fire_for_a_trigger_that_is_no_longer_a_schedule_starts_nothing(product_type):
    workflow = make_workflow(product_type, PUBLISH, triggers=[{"on": "entity.created"}])
    assert schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3) is None
    assert schedule_fire(workflow_id=workflow.pk, trigger_index=5, now=AT_3) is None
    assert schedule_fire(workflow_id="wf_gone", trigger_index=0, now=AT_3) is None
    assert not Run.objects.exists()


def test_a_filter_matching_more_than_run_max_entities_is_recorded_not_run(product_type, settings):
    settings.RUN_MAX_ENTITIES = 2
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    make_entities(product_type, 3)
    fire = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3)
    assert fire.outcome == "refused" and "3 entities match the filter" in fire.message
    assert not Run.objects.exists()


def test_the_tick_is_the_latest_cron_time_in_the_trigger_s_time_zone():
    paris = {"on": "schedule", "cron": "0 3 * * *", "timezone": "Europe/Paris"}
    # 03:00 in Paris is 02:00 UTC in winter.
    tick = schedule_tick(paris, datetime(2026, 12, 3, 2, 0, 5, tzinfo=UTC))
    assert tick.astimezone(UTC) == datetime(2026, 12, 3, 2, 0, tzinfo=UTC)
    exactly = schedule_tick(NIGHTLY, datetime(2026, 12, 3, 3, 0, tzinfo=UTC))
    assert exactly == datetime(2026, 12, 3, 3, 0, tzinfo=UTC)  # on the tick: that tick
    # Day of month and weekday both given must both match, as in beat's crontab.
    both = {"on": "schedule", "cron": "0 3 13 * 5"}  # Friday the 13th
    assert schedule_tick(both, AT_3).date().isoformat() == "2026-11-13"


def test_only_the_newest_fires_of_a_trigger_are_kept(product_type, monkeypatch):
    monkeypatch.setattr("jobs.schedules.FIRES_KEPT", 3)
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])  # nothing matches
    for day in range(5):
        schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3 + timedelta(day))
    ticks = ScheduleFire.objects.order_by("tick").values_list("tick__day", flat=True)
    assert list(ticks) == [5, 6, 7]


def test_a_scheduled_run_says_what_started_it_in_the_api(api, product_type):
    """The run's and the job's `trigger` as served: the schedule's cron, time zone, place and
    tick (ms, like every timestamp)."""
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    make_entities(product_type, 1)
    run = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3).run
    tick_ms = int(datetime(2026, 12, 3, 3, 0, tzinfo=UTC).timestamp() * 1000)
    expected = {"type": "schedule", "cron": "0 3 * * *", "timezone": "UTC", "index": 0}
    expected["tick"] = tick_ms
    shown = api.get(f"/api/v1/workflows/{workflow.pk}/runs/{run.pk}").json()
    assert shown["trigger"] == api.get(f"/api/v1/jobs/{shown['jobId']}").json()["trigger"]
    assert shown["trigger"] == expected


def test_ticks_stored_in_iso_8601_are_migrated_to_ms(product_type):
    from django.apps import apps

    ticks_to_ms = import_module("jobs.migrations.0014_schedule_ticks_in_ms").ticks_to_ms
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    make_entities(product_type, 1)
    run = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3).run
    migrated = dict(run.trigger)
    Run.objects.filter(pk=run.pk).update(
        trigger={**run.trigger, "tick": "2026-12-03T03:00:00+00:00"}
    )
    ticks_to_ms(apps, None)
    run.refresh_from_db()
    assert run.trigger == migrated


def test_a_tick_is_skipped_while_another_schedule_s_run_over_the_same_filter_is_open(
    product_type,
):
    """The check holds per workflow and filter: two crons over the same entities never run
    at once; a schedule over another filter still starts."""
    every_day = {"on": "schedule", "cron": "0 3 * * *", "filter": {"status": "draft"}}
    every_hour = {"on": "schedule", "cron": "0 * * * *", "filter": {"status": "draft"}}
    published = {"on": "schedule", "cron": "0 * * * *", "filter": {"status": "published"}}
    workflow = make_workflow(product_type, PUBLISH, triggers=[every_day, every_hour, published])
    make_entities(product_type, 3)
    started = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3).run
    skipped = schedule_fire(workflow_id=workflow.pk, trigger_index=1, now=AT_3)
    assert (skipped.outcome, skipped.run_id) == ("skipped", started.pk)
    assert "the run schedule #0 (same filter) started before" in skipped.message
    other = schedule_fire(workflow_id=workflow.pk, trigger_index=2, now=AT_3)
    assert other.outcome == "empty"  # not skipped: nothing is published
    assert Run.objects.filter(workflow=workflow).count() == 1
    _items(started)
    run_inline(started.pk)
    again = schedule_fire(workflow_id=workflow.pk, trigger_index=1, now=AT_3 + timedelta(hours=1))
    assert again.outcome == "empty"  # the draft run ended (its entities are published)


def _finish(run: Run) -> None:
    run_items_make(run_id=run.pk)
    run_inline(run.pk)


def test_a_fire_taken_by_a_worker_whose_clock_is_a_moment_behind_beat_s_starts_its_tick(
    product_type,
):
    """Beat sends the 11:00 fire at 11:00:00 by its clock; the worker that takes it reads
    10:59:59.9 on its own (two machines 100 ms apart). The fire is for the 11:00 tick, not
    the 10:00 one already fired (which started nothing: the 11:00 run was lost)."""
    hourly = {"on": "schedule", "cron": "0 * * * *", "filter": {"status": "draft"}}
    workflow = make_workflow(product_type, PUBLISH, triggers=[hourly])
    make_entities(product_type, 2)
    at_10 = datetime(2026, 12, 3, 10, 0, 0, 5000, tzinfo=UTC)
    first = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=at_10)
    assert first.outcome == "started"
    _finish(first.run)
    make_entities(product_type, 1)  # a new draft for the 11:00 tick
    worker_clock = datetime(2026, 12, 3, 10, 59, 59, 900000, tzinfo=UTC)
    fire = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=worker_clock)
    assert (fire.tick, fire.outcome) == (datetime(2026, 12, 3, 11, 0, tzinfo=UTC), "started")
    assert Run.objects.filter(workflow=workflow).count() == 2


def test_a_fire_in_flight_while_triggers_are_reordered_starts_no_second_run_for_a_fired_tick(
    api, product_type
):
    """The nightly schedule (#1) fired at 03:00. At 10:15 the quarter-past one (#0) is
    removed: the nightly becomes #0. The removed trigger's 10:15 fire, queued by beat just
    before the edit and taken just after, starts nothing: it was queued for another trigger
    than the one now at #0 (taken for the nightly, it found no fire of #0 for 03:00 and ran
    the nightly a second time that day)."""
    quarter_past = {"on": "schedule", "cron": "15 * * * *", "filter": {"status": "draft"}}
    nightly = {"on": "schedule", "cron": "0 3 * * *", "filter": {"status": "published"}}
    workflow = make_workflow(product_type, PUBLISH, triggers=[quarter_past, nightly])
    make_entities(product_type, 2)
    drafts = schedule_fire(  # publishes them: the nightly (published) has them to run on
        workflow_id=workflow.pk, trigger_index=0, now=datetime(2026, 12, 3, 2, 15, 20, tzinfo=UTC)
    )
    _finish(drafts.run)
    fired = schedule_fire(workflow_id=workflow.pk, trigger_index=1, now=AT_3)
    assert fired.outcome == "started"
    _finish(fired.run)
    queued = json.loads(PeriodicTask.objects.get(name=task_name(workflow.pk, 0)).kwargs)
    response = api.patch(f"/api/v1/workflows/{workflow.pk}", {"triggers": [nightly]})
    assert response.status_code == 200, response.content
    at_10 = datetime(2026, 12, 3, 10, 15, 5, tzinfo=UTC)
    assert schedule_fire(**queued, now=at_10) is None
    assert Run.objects.filter(workflow=workflow, filter={"status": "published"}).count() == 1
    moved = json.loads(PeriodicTask.objects.get(name=task_name(workflow.pk, 0)).kwargs)
    assert moved["trigger_digest"] == schedule_digest(nightly)  # its next fires start it


def test_a_fire_without_a_digest_fires_by_place_and_one_for_another_trigger_starts_nothing(
    product_type,
):
    """A PeriodicTask written before fires named their trigger sends no digest (until its
    workflow is saved again): that fire starts the trigger at its place, as it did. One
    queued for a trigger since edited (its filter changed) starts nothing; beat's next fire
    carries the new digest."""
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    make_entities(product_type, 1)
    assert schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3).outcome == "started"
    before_edit = schedule_digest({**NIGHTLY, "filter": {"status": "published"}})
    assert before_edit != schedule_digest(NIGHTLY)
    assert schedule_digest({**NIGHTLY, "timezone": "UTC"}) == schedule_digest(NIGHTLY)
    late = schedule_fire(
        workflow_id=workflow.pk, trigger_index=0, trigger_digest=before_edit, now=NEXT_DAY
    )
    assert late is None
    assert ScheduleFire.objects.filter(workflow=workflow).count() == 1


def test_ticks_skipped_while_a_run_stays_open_log_once_in_that_run(product_type):
    """A minutely schedule whose run waits (a review no one decides) skips every tick: each
    skip is a fire in the schedule's history (its newest FIRES_KEPT), and the run's log says
    so once, not a line per tick for as long as the run stays open."""
    minutely = {"on": "schedule", "cron": "* * * * *", "filter": {"status": "draft"}}
    workflow = make_workflow(product_type, PUBLISH, triggers=[minutely])
    make_entities(product_type, 2)
    started = schedule_fire(workflow_id=workflow.pk, trigger_index=0, now=AT_3).run
    for minute in range(1, 6):
        fire = schedule_fire(
            workflow_id=workflow.pk, trigger_index=0, now=AT_3 + timedelta(minutes=minute)
        )
        assert (fire.outcome, fire.run_id) == ("skipped", started.pk)
    [line] = RunLog.objects.filter(run=started, level="warning").values_list("message", flat=True)
    assert "Tick 2026-12-03T03:01:00+00:00 of schedule * * * * * skipped" in line
    assert ScheduleFire.objects.filter(workflow=workflow, outcome="skipped").count() == 5


def test_a_crontab_no_schedule_uses_any_more_is_deleted(api, product_type):
    """Every cron a workflow's schedule ever had was kept as a CrontabSchedule row: editing a
    cron (or deleting its workflow) left the old one behind, for ever."""
    from django_celery_beat.models import CrontabSchedule

    before = CrontabSchedule.objects.count()
    shared = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    workflow_id = _create(api, product_type, [{**NIGHTLY, "filter": {"status": "published"}}])
    for minute in range(10):
        moved = {**NIGHTLY, "cron": f"{minute} 5 * * *"}
        response = api.patch(f"/api/v1/workflows/{workflow_id}", {"triggers": [moved]})
        assert response.status_code == 200, response.content
    assert CrontabSchedule.objects.count() == before + 2  # the nightly; "9 5 * * *"
    response = api.patch(f"/api/v1/workflows/{workflow_id}", {"triggers": [NIGHTLY]})
    assert response.status_code == 200, response.content
    assert CrontabSchedule.objects.count() == before + 2
    shared.delete()
    assert CrontabSchedule.objects.count() == before + 1
    api.patch(f"/api/v1/workflows/{workflow_id}", {"triggers": []})
    assert CrontabSchedule.objects.count() == before


def test_a_crontab_another_periodic_task_uses_stays_when_its_schedule_moves(product_type):
    """A crontab an older save shared (found by its fields) with a task of someone else's
    stays while that task uses it."""
    workflow = make_workflow(product_type, PUBLISH, triggers=[NIGHTLY])
    [task] = _tasks(workflow.pk)
    PeriodicTask.objects.create(name="someone else's", task="x", crontab=task.crontab)
    workflow.triggers = [{**NIGHTLY, "cron": "0 4 * * *"}]
    workflow.save()
    assert PeriodicTask.objects.get(name="someone else's").crontab_id == task.crontab_id


def test_a_schedule_over_ten_thousand_ids_keeps_its_periodic_task_small(product_type):
    """Beat loads every enabled PeriodicTask whole, each time its schedule changes: a filter
    of 10,000 ids copied into the description made each row 380 KB, 7.6 MB per workflow of
    twenty such schedules, in beat's memory. The description names the ids' count."""
    ids = [f"ent_{n:030d}" for n in range(10_000)]
    workflow = make_workflow(product_type, PUBLISH, triggers=[{**NIGHTLY, "filter": {"ids": ids}}])
    [task] = _tasks(workflow.pk)
    assert len(task.description) < 1000
    assert "10000 ids" in task.description and len(task.kwargs) < 200
