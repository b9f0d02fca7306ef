"""Schedule triggers: a workflow's `{"on": "schedule", "cron", "timezone"?, "filter"?}` kept
as django-celery-beat `PeriodicTask` rows, which beat's DatabaseScheduler fires, and the fire.

The workflow's `triggers` are the source of truth. Every save or delete of a workflow (API,
admin, services) re-writes its rows here, in the same transaction: one row per schedule
trigger, named `workflow:<id>:trigger:<index>`, enabled only while the workflow is `active`,
with a `CrontabSchedule` of its own; rows of triggers that are gone are deleted, and so is a
crontab no task uses any more (a cron edited, a trigger removed, a workflow deleted). The
admin shows these rows read-only (edit the workflow's triggers instead).

A fire (`schedule_fire`) works out the tick it is for (the latest cron time at or before
now plus `CLOCK_GRACE`, in the trigger's time zone: see `schedule_fire`), and, holding the
workflow's row lock, records one
`ScheduleFire` per (workflow, trigger, tick): a fire delivered again for that tick finds its
row and starts nothing, and a backlog of fires queued while the workers were down collapses
into one run. If a run a schedule of the workflow started over the same filter is still open
(pending, running, entities waiting), whichever trigger started it, the tick is skipped: a
warning log line, a line in that run's log (the first skip only: a run open for months would
otherwise get a line per tick) and the `ScheduleFire` row (admin) say so.
Otherwise it starts a run over what matches the trigger's `filter` at that moment.

A fire carries the digest of the trigger it was queued for (`trigger_digest`: its cron, time
zone and filter) and starts nothing if the trigger at its place is another by then: triggers
are known by their place in the list, and a fire in flight while they are edited (removed,
reordered) would otherwise start whichever trigger took that place, for that trigger's tick
(once more, when it had fired under its old place). A message without the digest (a
PeriodicTask written before it existed, until its workflow is saved again) fires by place.
"""

import hashlib
import json
import logging
import zoneinfo
from datetime import datetime, timedelta
from functools import partial

from croniter import croniter
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from config.api.errors import InvalidInput
from config.api.fields import to_millis
from jobs import queue
from jobs.filter_runs import run_start_over_filter
from jobs.models import Run, RunLog, RunStatus, ScheduleFire, TriggerType
from workflows.models import Workflow

logger = logging.getLogger(__name__)
# Fires kept per trigger (the admin's history). Only the current tick's record is needed to
# stop a second run: the tick is worked out at fire time, so an older one never comes back.
FIRES_KEPT = 200
# Beat never sends a fire before its tick by beat's clock, but the worker that takes it may
# read a moment earlier on its own (another machine): the tick is worked out from the
# worker's clock plus this. Well above the skew of machines kept in time (NTP: milliseconds),
# well below the shortest cron period (a minute).
CLOCK_GRACE = timedelta(seconds=10)


def task_prefix(workflow_id: str) -> str:
    return f"workflow:{workflow_id}:trigger:"


def task_name(workflow_id: str, index: int) -> str:
    """The PeriodicTask of the workflow's trigger at `index`."""
    return f"{task_prefix(workflow_id)}{index}"


def schedule_digest(trigger: dict) -> str:
    """What a fire of the schedule `trigger` is for, in short: a digest of its cron, time
    zone and filter (the filter's keys in any order)."""
    spec = {
        "cron": trigger["cron"],
        "timezone": trigger.get("timezone") or "UTC",
        "filter": trigger.get("filter") or {},
    }
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _crontab_spec(trigger: dict) -> dict:
    """The `CrontabSchedule` fields of the trigger's cron, in its time zone."""
    minute, hour, day_of_month, month_of_year, day_of_week = trigger["cron"].split()
    return {
        "minute": minute,
        "hour": hour,
        "day_of_month": day_of_month,
        "month_of_year": month_of_year,
        "day_of_week": day_of_week,
        "timezone": zoneinfo.ZoneInfo(trigger.get("timezone") or "UTC"),
    }


def _crontab_is(crontab: CrontabSchedule | None, spec: dict) -> bool:
    return crontab is not None and all(
        str(getattr(crontab, key)) == str(value) for key, value in spec.items()
    )


def _crontabs_drop_unused(crontab_ids: set) -> None:
    """Delete those of the crontabs no periodic task uses any more: each cron a schedule ever
    had would otherwise be kept for ever. A task's crontab is its own (never one found by
    its fields and shared), so no other save attaches a task to one of these meanwhile;
    one an older save shared is deleted with its last task."""
    if crontab_ids := crontab_ids - {None}:
        CrontabSchedule.objects.filter(pk__in=crontab_ids, periodictask__isnull=True).delete()


def _description(workflow: Workflow, index: int, trigger: dict) -> str:
    """What the admin shows of the task. Its filter's ids are counted, not copied: beat
    loads every enabled task whole, and 10,000 ids made a row of 380 KB."""
    entity_filter = dict(trigger.get("filter") or {})
    if "ids" in entity_filter:
        entity_filter["ids"] = f"{len(entity_filter['ids'])} ids"
    return (
        f"Schedule trigger #{index} of workflow {workflow.pk} ({workflow.name}): "
        f"{trigger['cron']} {trigger.get('timezone') or 'UTC'}, "
        f"filter {json.dumps(entity_filter)}. "
        "Kept in step with the workflow's triggers: edit those, not this task."
    )


def schedules_sync(*, workflow: Workflow) -> None:
    """Make the workflow's PeriodicTask rows match its schedule triggers; rows unchanged are
    not written (each write makes beat read its schedule again)."""
    wanted = {
        task_name(workflow.pk, index): (index, trigger)
        for index, trigger in enumerate(workflow.triggers or [])
        if isinstance(trigger, dict) and trigger.get("on") == "schedule"
    }
    existing = {
        task.name: task
        for task in PeriodicTask.objects.filter(
            name__startswith=task_prefix(workflow.pk)
        ).select_related("crontab")
    }
    left: set = set()
    for name in existing.keys() - wanted.keys():
        left.add(existing[name].crontab_id)
        existing[name].delete()
    enabled = workflow.status == Workflow.Status.ACTIVE
    for name, (index, trigger) in wanted.items():
        spec = _crontab_spec(trigger)
        fields = {
            "task": queue.FIRE_SCHEDULE,
            "kwargs": json.dumps(
                {
                    "workflow_id": workflow.pk,
                    "trigger_index": index,
                    "trigger_digest": schedule_digest(trigger),
                }
            ),
            "enabled": enabled,
            "description": _description(workflow, index, trigger),
        }
        task = existing.get(name)
        if task is None:
            crontab = CrontabSchedule.objects.create(**spec)
            PeriodicTask(name=name, crontab=crontab, **fields).save()
            continue
        moved = not _crontab_is(task.crontab, spec)
        if not moved and all(getattr(task, key) == value for key, value in fields.items()):
            continue
        for key, value in fields.items():
            setattr(task, key, value)
        if moved:
            left.add(task.crontab_id)
            task.crontab = CrontabSchedule.objects.create(**spec)
            task.last_run_at = None  # the next tick of the new cron, no catching up
        task.interval, task.solar, task.clocked = None, None, None
        task.save()
    _crontabs_drop_unused(left)


def schedules_remove(*, workflow_id: str) -> int:
    """Delete the PeriodicTask rows of a deleted workflow."""
    tasks = list(PeriodicTask.objects.filter(name__startswith=task_prefix(workflow_id)))
    for task in tasks:
        task.delete()  # one by one: each tells beat its schedule changed
    _crontabs_drop_unused({task.crontab_id for task in tasks})
    return len(tasks)


def on_workflow_saved(sender, instance: Workflow, raw=False, **kwargs) -> None:
    """`post_save` of Workflow (connected in `jobs.apps`)."""
    if not raw:
        schedules_sync(workflow=instance)


def on_workflow_deleted(sender, instance: Workflow, **kwargs) -> None:
    """`post_delete` of Workflow (connected in `jobs.apps`)."""
    schedules_remove(workflow_id=instance.pk)


def schedule_tick(trigger: dict, now: datetime) -> datetime:
    """The latest time at or before `now` the trigger's cron names, in its time zone. Day of
    month and day of week both restricted must both match, as in beat's crontab."""
    zone = zoneinfo.ZoneInfo(trigger.get("timezone") or "UTC")
    after = now.astimezone(zone) + timedelta(microseconds=1)  # `now` on a tick is that tick
    return croniter(trigger["cron"], after, day_or=False).get_prev(datetime)


def _schedule_trigger(workflow: Workflow, index: int) -> dict | None:
    triggers = workflow.triggers or []
    trigger = triggers[index] if 0 <= index < len(triggers) else None
    return trigger if isinstance(trigger, dict) and trigger.get("on") == "schedule" else None


def _open_run(workflow_id: str, entity_filter: dict) -> Run | None:
    """A run a schedule of the workflow started over `entity_filter` that has not ended, if
    any: per filter, not per trigger, so two schedules over the same entities (`* * * * *`
    and `*/5 * * * *`) never run at once. (Filters compare as JSON values: key order aside.)"""
    return (
        Run.objects.filter(
            workflow_id=workflow_id,
            trigger__type=TriggerType.SCHEDULE,
            filter=entity_filter,
            status__in=RunStatus.open(),
        )
        .order_by("-created_at")
        .first()
    )


def _record(workflow, index, trigger, tick, outcome, run, message) -> ScheduleFire:
    mine = ScheduleFire.objects.filter(workflow=workflow, trigger_index=index)
    oldest_kept = mine.order_by("-tick").values_list("tick", flat=True)[
        FIRES_KEPT - 2 : FIRES_KEPT - 1
    ]
    mine.filter(tick__lt=oldest_kept).delete()  # nothing if fewer are kept (empty subquery)
    return ScheduleFire.objects.create(
        workflow=workflow,
        trigger_index=index,
        cron=trigger["cron"],
        tick=tick,
        outcome=outcome,
        run=run,
        message=message,
    )


@transaction.atomic
def schedule_fire(
    *,
    workflow_id: str,
    trigger_index: int,
    trigger_digest: str | None = None,
    now: datetime | None = None,
) -> ScheduleFire | None:
    """Fire the workflow's schedule trigger at `trigger_index` (if it is still the one of
    `trigger_digest`, when given) for its tick: start a run over its filter, or skip it while
    the run it started before is open. Returns the tick's record, or None if the workflow is
    gone, not active, or has no such trigger (any more).

    The tick is the latest cron time at or before `now` (the worker's clock) plus
    CLOCK_GRACE. Beat sends the fire at the tick by its own clock; read on a worker's clock
    a moment behind, "the latest tick" was the one before, already fired, and the tick's run
    was lost. The message cannot say which tick beat sent it for (django-celery-beat sends a
    PeriodicTask's fixed kwargs), and the database's clock is a third one, no nearer beat's.
    A fire taken more than a period less CLOCK_GRACE late (a minutely cron's, 50 s late)
    counts for the next tick, which then starts nothing: one run for the two, as for a
    backlog."""
    now = now or timezone.now()
    workflow = Workflow.objects.select_for_update().filter(pk=workflow_id).first()
    trigger = _schedule_trigger(workflow, trigger_index) if workflow else None
    why = (
        "the workflow is gone"
        if workflow is None
        else "no schedule trigger is there"
        if trigger is None
        else "the trigger there changed since the fire was queued"
        if trigger_digest not in (None, schedule_digest(trigger))
        else f"the workflow is {workflow.status}"
        if workflow.status != Workflow.Status.ACTIVE
        else ""
    )
    if why:
        logger.info(
            "Schedule of workflow %s, trigger %s: not fired (%s).", workflow_id, trigger_index, why
        )
        return None
    tick = schedule_tick(trigger, now + CLOCK_GRACE)
    record = partial(_record, workflow, trigger_index, trigger, tick)
    done = ScheduleFire.objects.filter(workflow=workflow, trigger_index=trigger_index, tick=tick)
    if (fire := done.first()) is not None:
        name = task_name(workflow_id, trigger_index)
        logger.info("Schedule %s already fired for %s: nothing to do.", name, tick)
        return fire
    entity_filter = trigger.get("filter") or {}
    still_open = _open_run(workflow_id, entity_filter)
    if still_open is not None:
        started_by = still_open.trigger.get("index")
        by = "it" if started_by == trigger_index else f"schedule #{started_by} (same filter)"
        message = (
            f"Tick {tick.isoformat()} of schedule {trigger['cron']} skipped: the run {by} "
            f"started before, {still_open.pk}, is still {still_open.status}."
        )
        logger.warning("Workflow %s: %s", workflow_id, message)
        skipped = ScheduleFire.objects.filter(
            workflow=workflow, run=still_open, outcome=ScheduleFire.Outcome.SKIPPED
        )
        if not skipped.exists():  # once: a run open for months is not a log line per tick
            RunLog.objects.create(
                run=still_open,
                level=RunLog.Level.WARNING,
                message=f"{message} Later ticks skipped while it is open are in the "
                "schedule's fires.",
            )
        return record(ScheduleFire.Outcome.SKIPPED, still_open, message)
    started = {
        "type": TriggerType.SCHEDULE.value,
        "cron": trigger["cron"],
        "timezone": trigger.get("timezone") or "UTC",
        "index": trigger_index,
        "tick": to_millis(tick),  # ms, as every timestamp the API serves
    }
    try:
        run = run_start_over_filter(
            workflow_id=workflow_id,
            entity_filter=entity_filter,
            trigger=started,
            empty_ok=True,
        )
    except InvalidInput as exc:  # more than RUN_MAX_ENTITIES match
        logger.warning("Workflow %s: schedule tick %s started no run: %s", workflow_id, tick, exc)
        return record(ScheduleFire.Outcome.REFUSED, None, str(exc))
    if run is None:
        message = "Nothing matched the filter: no run started."
        logger.info("Workflow %s: schedule tick %s: %s", workflow_id, tick, message)
        return record(ScheduleFire.Outcome.EMPTY, None, message)
    logger.info("Workflow %s: schedule tick %s started run %s", workflow_id, tick, run.pk)
    return record(ScheduleFire.Outcome.STARTED, run, "Run started.")
