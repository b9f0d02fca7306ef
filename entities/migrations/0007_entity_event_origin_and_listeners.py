from django.db import migrations, models


class Migration(migrations.Migration):
    """An outbox event names the run that made its change (a trigger chain cut at its depth
    says so in that run's log) and the listeners (workflows) whose triggers the change met
    when it was made, which also says whom an event held back is for."""

    dependencies = [
        ("entities", "0006_revisions_entity_unchecked"),
    ]

    operations = [
        migrations.AddField(
            model_name="entityevent",
            name="origin_run_id",
            field=models.CharField(blank=True, db_default="", default="", max_length=40),
        ),
        migrations.AddField(
            model_name="entityevent",
            name="listener_ids",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
