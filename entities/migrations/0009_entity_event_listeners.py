from django.db import migrations, models


class Migration(migrations.Migration):
    """An outbox event names the listeners (workflows) whose triggers the change met when it
    was made, which also says whom an event held back is for."""

    dependencies = [
        ("entities", "0008_entity_event_for_workflow"),
    ]

    operations = [
        migrations.RemoveField(model_name="entityevent", name="for_workflow_id"),
        migrations.AddField(
            model_name="entityevent",
            name="listener_ids",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
