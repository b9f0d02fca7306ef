import json
import zoneinfo

from django.db import migrations
from django.utils import timezone


def schedules_to_beat(apps, schema_editor):
    """Schedule triggers stored before beat fired them get their PeriodicTask rows, as
    `jobs.schedules.schedules_sync` writes them (kept here in historical models)."""
    Workflow = apps.get_model("workflows", "Workflow")
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    written = 0
    for workflow in Workflow.objects.exclude(triggers=[]).iterator():
        for index, trigger in enumerate(workflow.triggers or []):
            if not isinstance(trigger, dict) or trigger.get("on") != "schedule":
                continue
            minute, hour, day_of_month, month_of_year, day_of_week = trigger["cron"].split()
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=minute,
                hour=hour,
                day_of_month=day_of_month,
                month_of_year=month_of_year,
                day_of_week=day_of_week,
                timezone=zoneinfo.ZoneInfo(trigger.get("timezone") or "UTC"),
            )
            PeriodicTask.objects.update_or_create(
                name=f"workflow:{workflow.pk}:trigger:{index}",
                defaults={
                    "task": "jobs.tasks.fire_schedule",
                    "crontab": crontab,
                    "kwargs": json.dumps({"workflow_id": workflow.pk, "trigger_index": index}),
                    "enabled": workflow.status == "active",
                    "description": f"Schedule trigger #{index} of workflow {workflow.pk}. "
                    "Kept in step with the workflow's triggers: edit those, not this task.",
                },
            )
            written += 1
    if written:
        PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0011_schedule_fires"),
        ("workflows", "0003_workflow_triggers"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(schedules_to_beat, migrations.RunPython.noop)]
