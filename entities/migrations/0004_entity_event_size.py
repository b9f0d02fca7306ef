from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("entities", "0003_entity_event_outbox"),
    ]

    # Events waiting when this is applied count as one entity each: the dispatch may then
    # take a few more ids than RUN_MAX_IDS at once, and splits them into runs as before.
    operations = [
        migrations.AddField(
            model_name="entityevent",
            name="size",
            field=models.PositiveIntegerField(default=1),
        ),
    ]
