from datetime import datetime

from django.db import migrations


def ticks_to_ms(apps, schema_editor):
    """Scheduled runs stored their trigger's `tick` as ISO 8601; the API serves every
    timestamp in ms, and so does the trigger from now on (one run per schedule tick: few)."""
    Run = apps.get_model("jobs", "Run")
    for run in Run.objects.filter(trigger__type="schedule").only("pk", "trigger").iterator():
        tick = run.trigger.get("tick")
        if isinstance(tick, str):
            ms = int(datetime.fromisoformat(tick).timestamp() * 1000)
            Run.objects.filter(pk=run.pk).update(trigger={**run.trigger, "tick": ms})


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0013_run_chunk_size"),
    ]

    operations = [migrations.RunPython(ticks_to_ms, migrations.RunPython.noop)]
