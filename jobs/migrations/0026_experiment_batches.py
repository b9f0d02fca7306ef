"""An experiment's sides may wait for a provider batch: a batch belongs to a run or an
experiment, and a batch request has its own id (its `custom_id`: a run's wait's id, or an
experiment's side's id), its wait optional. The requests' table is made anew and its rows
copied (each keeps its wait's id as its id), which every database does alike."""

import functools

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import config.api.ids


def copy_requests(apps, schema_editor):
    old = apps.get_model("jobs", "AiBatchRequest")
    new = apps.get_model("jobs", "AiBatchRequestNew")
    rows = old.objects.all().order_by("wait_id")
    batch = []
    for row in rows.iterator(chunk_size=1000):
        batch.append(
            new(
                id=row.wait_id,
                wait_id=row.wait_id,
                batch_id=row.batch_id,
                request=row.request,
                attempts=row.attempts,
                corrected=row.corrected,
                usage=row.usage,
            )
        )
        if len(batch) == 1000:
            new.objects.bulk_create(batch)
            batch = []
    new.objects.bulk_create(batch)


def copy_requests_back(apps, schema_editor):
    """Going back: a run's requests return to the old table (an experiment's have no wait,
    and go with their batches)."""
    new = apps.get_model("jobs", "AiBatchRequestNew")
    old = apps.get_model("jobs", "AiBatchRequest")
    old.objects.bulk_create(
        [
            old(
                wait_id=row.wait_id,
                batch_id=row.batch_id,
                request=row.request,
                attempts=row.attempts,
                corrected=row.corrected,
                usage=row.usage,
            )
            for row in new.objects.filter(wait__isnull=False).iterator(chunk_size=1000)
        ],
        batch_size=1000,
    )


def drop_experiment_batches(apps, schema_editor):
    """Going back: a batch must have a run again."""
    apps.get_model("jobs", "AiBatch").objects.filter(run__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0025_experiment_summary"),
    ]

    operations = [
        migrations.CreateModel(
            name="ExperimentSide",
            fields=[
                (
                    "id",
                    models.CharField(
                        default=functools.partial(config.api.ids.new_id, *("exs",), **{}),
                        editable=False,
                        max_length=40,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("entity_id", models.CharField(max_length=40)),
                ("position", models.PositiveIntegerField()),
                ("arm", models.CharField(max_length=16)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("waiting", "Waiting"),
                            ("resolved", "Resolved"),
                            ("ended", "Ended"),
                        ],
                        max_length=16,
                    ),
                ),
                ("checkpoint", models.JSONField(blank=True, null=True)),
                ("side", models.JSONField(blank=True, null=True)),
                ("resolution", models.JSONField(blank=True, null=True)),
                ("task_key", models.CharField(blank=True, max_length=56)),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                (
                    "created_at",
                    models.DateTimeField(default=django.utils.timezone.now, editable=False),
                ),
                (
                    "experiment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="sides",
                        to="jobs.experiment",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["experiment", "status"], name="experiment_side_status")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("experiment", "entity_id", "arm"), name="experiment_side_once"
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="aibatch",
            name="experiment",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="batches",
                to="jobs.experiment",
            ),
        ),
        migrations.AlterField(
            model_name="aibatch",
            name="run",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="batches",
                to="jobs.run",
            ),
        ),
        migrations.AddConstraint(
            model_name="aibatch",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("experiment__isnull", True), ("run__isnull", False)),
                    models.Q(("experiment__isnull", False), ("run__isnull", True)),
                    _connector="OR",
                ),
                name="aibatch_run_or_experiment",
            ),
        ),
        migrations.RunPython(migrations.RunPython.noop, drop_experiment_batches),
        migrations.CreateModel(
            name="AiBatchRequestNew",
            fields=[
                (
                    "id",
                    models.CharField(
                        editable=False, max_length=40, primary_key=True, serialize=False
                    ),
                ),
                (
                    "request",
                    models.JSONField(
                        help_text="What the step asked: provider, request, outputField."
                    ),
                ),
                (
                    "attempts",
                    models.PositiveSmallIntegerField(default=1, help_text="Submissions so far."),
                ),
                (
                    "corrected",
                    models.BooleanField(
                        default=False,
                        help_text="Sent again with the corrective prompt (an invalid JSON answer).",
                    ),
                ),
                (
                    "usage",
                    models.JSONField(
                        blank=True, default=dict, help_text="Of its earlier attempts."
                    ),
                ),
                (
                    "batch",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="jobs.aibatch",
                    ),
                ),
                (
                    "wait",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="jobs.wait",
                    ),
                ),
            ],
        ),
        migrations.RunPython(copy_requests, copy_requests_back),
        migrations.DeleteModel(name="AiBatchRequest"),
        migrations.RenameModel(old_name="AiBatchRequestNew", new_name="AiBatchRequest"),
        migrations.AlterField(
            model_name="aibatchrequest",
            name="batch",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="requests",
                to="jobs.aibatch",
            ),
        ),
        migrations.AlterField(
            model_name="aibatchrequest",
            name="wait",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="batch_request",
                to="jobs.wait",
            ),
        ),
    ]
