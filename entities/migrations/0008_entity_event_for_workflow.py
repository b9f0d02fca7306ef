from django.db import migrations, models


class Migration(migrations.Migration):
    """An outbox event held back for one workflow (its entities were in an open run of it)."""

    dependencies = [
        ("entities", "0007_entity_event_origin_run"),
    ]

    operations = [
        migrations.AddField(
            model_name="entityevent",
            name="for_workflow_id",
            field=models.CharField(blank=True, db_default="", default="", max_length=40),
        ),
    ]
