"""Drop indexes no query uses, each one a cost on every entity a run writes.

- `entity_type` is the first column of `entity_type_newest`, which serves its lookups.
- PostgreSQL gets a second, `varchar_pattern_ops` index on a varchar primary key, for LIKE
  queries; ids are only ever matched exactly.
"""

import django.db.models.deletion
from django.db import migrations, models

ID_LIKE_INDEX = "entities_entity_id_6fcd2580_like"  # Django's name for it, fixed by the table


def drop_id_like_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {ID_LIKE_INDEX}")


def create_id_like_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {ID_LIKE_INDEX} "
            "ON entities_entity (id varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("entities", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="entity",
            name="entity_type",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="entities",
                to="entities.entitytype",
            ),
        ),
        migrations.RunPython(drop_id_like_index, create_id_like_index, elidable=False),
    ]
