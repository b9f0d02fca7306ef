from django.db import migrations, models


class Migration(migrations.Migration):
    """The run that made an outbox event's change: a trigger chain cut at its depth says so
    in that run's log."""

    dependencies = [
        ("entities", "0006_revisions_entity_unchecked"),
    ]

    operations = [
        migrations.AddField(
            model_name="entityevent",
            name="origin_run_id",
            field=models.CharField(blank=True, db_default="", default="", max_length=40),
        ),
    ]
