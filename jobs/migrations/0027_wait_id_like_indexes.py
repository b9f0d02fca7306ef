"""Drop the `varchar_pattern_ops` indexes PostgreSQL gets beside each varchar key (for LIKE
queries) on the tables a run writes a row of per waiting entity: ids are only ever matched
exactly (the admin's search is `icontains`, which no such index serves), and each is one
more index entry per wait parked and per review decided. (As `entities.0002` did for the
entities.)"""

from django.db import migrations

# Django's names for them, fixed by table and column.
LIKE_INDEXES = {
    "jobs_wait_id_d29d7bce_like": ("jobs_wait", "id"),
    "jobs_review_id_b82ad08e_like": ("jobs_review", "id"),
    "jobs_review_wait_id_0532d409_like": ("jobs_review", "wait_id"),
    "jobs_delay_wait_id_bbc3ef1f_like": ("jobs_delay", "wait_id"),
    "jobs_eventwait_wait_id_5ca9a106_like": ("jobs_eventwait", "wait_id"),
    "jobs_aibatchrequest_id_4a1471c8_like": ("jobs_aibatchrequest", "id"),
    "jobs_aibatchrequest_batch_id_41d0822e_like": ("jobs_aibatchrequest", "batch_id"),
    "jobs_aibatchrequest_wait_id_09921d88_like": ("jobs_aibatchrequest", "wait_id"),
}


def drop_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in LIKE_INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def create_like_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, (table, column) in LIKE_INDEXES.items():
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column} varchar_pattern_ops)"
            )


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0026_experiment_batches"),
    ]

    operations = [
        migrations.RunPython(drop_like_indexes, create_like_indexes, elidable=False),
    ]
