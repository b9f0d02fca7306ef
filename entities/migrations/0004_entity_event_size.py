from django.db import migrations, models


def sizes_backfill(apps, schema_editor):
    """Events waiting when this is applied get their real size (the outbox is small: it
    holds only the events of the last few seconds)."""
    EntityEvent = apps.get_model("entities", "EntityEvent")
    for event in EntityEvent.objects.only("pk", "entity_ids").iterator(chunk_size=500):
        EntityEvent.objects.filter(pk=event.pk).update(size=len(event.entity_ids))


class Migration(migrations.Migration):
    dependencies = [
        ("entities", "0003_entity_event_outbox"),
    ]

    operations = [
        migrations.AddField(
            model_name="entityevent",
            name="size",
            # A database default too: processes still running the code before this column
            # (a rolling deploy) write events without it.
            field=models.PositiveIntegerField(db_default=1, default=1),
        ),
        migrations.RunPython(sizes_backfill, migrations.RunPython.noop),
    ]
