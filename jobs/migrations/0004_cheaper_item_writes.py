"""Cheaper writes for a run's items and log lines (every item is written three times per run).

- Foreign keys that lead a composite index get no index of their own.
- No index holds an item's `status`, and on PostgreSQL the table keeps half of each page free
  (fillfactor 50), so claiming an item and recording its outcome are HOT updates: the row
  changes in place and no index entry is written.
"""

import django.db.models.deletion
from django.db import migrations, models


def set_fillfactor(value: int):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(f"ALTER TABLE jobs_runitem SET (fillfactor = {value})")

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0003_run_heartbeat"),
        ("workflows", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="run",
            name="workflow",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to="workflows.workflow",
            ),
        ),
        migrations.AlterField(
            model_name="runitem",
            name="run",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="items",
                to="jobs.run",
            ),
        ),
        migrations.AlterField(
            model_name="runlog",
            name="run",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="logs",
                to="jobs.run",
            ),
        ),
        migrations.RemoveIndex(model_name="runitem", name="item_run_status_newest"),
        migrations.AddIndex(
            model_name="runitem",
            index=models.Index(fields=["run", "-id"], name="item_run_newest"),
        ),
        migrations.RunPython(set_fillfactor(50), set_fillfactor(100), elidable=False),
        migrations.AlterField(
            model_name="run",
            name="heartbeat_at",
            field=models.DateTimeField(
                blank=True,
                help_text=(
                    "Last sign of progress: a chunk claimed or finished, or a step still working."
                ),
                null=True,
            ),
        ),
    ]
