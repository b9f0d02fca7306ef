"""Reviews store what the run changed, not a copy of the entity, and share their instructions
per run. Existing reviews are converted in place, so every one reads as before:

- `proposed` (the whole working copy) becomes `changes` (its top-level keys that differ from
  the entity as stored now) and `removed` (the entity's keys it lacks): the entity with them
  applied is `proposed` again (`Review.proposed_on`). A review of a deleted entity keeps all
  of `proposed` as its changes.
- `instructions` (the rendered text) becomes a `ReviewInstructions` row per run and distinct
  text, which the review points to.

It is reversible with reviews stored: going back rebuilds `proposed` and the text from them
(the old columns come back nullable, are filled, then made required again).
"""

import hashlib

import django.db.models.deletion
from django.db import migrations, models

BATCH = 1000
MISSING = object()


def convert(apps, schema_editor):
    Review = apps.get_model("jobs", "Review")
    ReviewInstructions = apps.get_model("jobs", "ReviewInstructions")
    Entity = apps.get_model("entities", "Entity")
    last = ""
    while True:
        reviews = list(
            Review.objects.filter(pk__gt=last)
            .order_by("pk")
            .only("pk", "run_id", "entity_id", "proposed", "old_instructions")[:BATCH]
        )
        if not reviews:
            return
        last = reviews[-1].pk
        current = dict(
            Entity.objects.filter(pk__in={r.entity_id for r in reviews}).values_list("pk", "data")
        )
        texts = {}
        for review in reviews:
            review.digest = hashlib.sha256(review.old_instructions.encode()).hexdigest()
            texts[(review.run_id, review.digest)] = review.old_instructions
            proposed, stored = review.proposed or {}, current.get(review.entity_id)
            if stored is None:
                review.changes, review.removed = proposed, []
                continue
            review.changes = {
                key: value for key, value in proposed.items() if stored.get(key, MISSING) != value
            }
            review.removed = [key for key in stored if key not in proposed]
        ReviewInstructions.objects.bulk_create(
            [
                ReviewInstructions(run_id=run_id, digest=digest, text=text)
                for (run_id, digest), text in texts.items()
            ],
            ignore_conflicts=True,
        )
        rows = ReviewInstructions.objects.filter(
            run_id__in={run_id for run_id, _ in texts}, digest__in={d for _, d in texts}
        ).values_list("pk", "run_id", "digest")
        shared = {(run_id, digest): pk for pk, run_id, digest in rows}
        for review in reviews:
            review.instructions_id = shared[(review.run_id, review.digest)]
        Review.objects.bulk_update(reviews, ["changes", "removed", "instructions"])


def unconvert(apps, schema_editor):
    Review = apps.get_model("jobs", "Review")
    ReviewInstructions = apps.get_model("jobs", "ReviewInstructions")
    Entity = apps.get_model("entities", "Entity")
    last = ""
    while True:
        reviews = list(
            Review.objects.filter(pk__gt=last)
            .order_by("pk")
            .only("pk", "entity_id", "changes", "removed", "instructions_id")[:BATCH]
        )
        if not reviews:
            return
        last = reviews[-1].pk
        current = dict(
            Entity.objects.filter(pk__in={r.entity_id for r in reviews}).values_list("pk", "data")
        )
        texts = dict(
            ReviewInstructions.objects.filter(
                pk__in={r.instructions_id for r in reviews}
            ).values_list("pk", "text")
        )
        for review in reviews:
            proposed = dict(current.get(review.entity_id) or {})
            for key in review.removed or []:
                proposed.pop(key, None)
            proposed.update(review.changes or {})
            review.proposed = proposed
            review.old_instructions = texts.get(review.instructions_id, "")
        Review.objects.bulk_update(reviews, ["proposed", "old_instructions"])


class Migration(migrations.Migration):
    dependencies = [
        ("entities", "0001_initial"),
        ("jobs", "0016_view_metrics_permission"),
    ]

    operations = [
        migrations.CreateModel(
            name="ReviewInstructions",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "digest",
                    models.CharField(help_text="SHA-256 of the text, in hex.", max_length=64),
                ),
                ("text", models.TextField()),
                (
                    "run",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="jobs.run",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "review instructions",
                "constraints": [
                    models.UniqueConstraint(
                        fields=("run", "digest"), name="review_instructions_once"
                    )
                ],
            },
        ),
        migrations.RenameField("review", "instructions", "old_instructions"),
        # Nullable before they are dropped, so that going back adds them to a table with rows.
        migrations.AlterField("review", "old_instructions", models.TextField(null=True)),
        migrations.AlterField("review", "proposed", models.JSONField(null=True)),
        migrations.AddField(
            model_name="review",
            name="instructions",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="jobs.reviewinstructions",
            ),
        ),
        migrations.AddField(
            model_name="review",
            name="changes",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="Top-level keys the run set (new or changed), with the reviewer's "
                "edits.",
            ),
        ),
        migrations.AddField(
            model_name="review",
            name="removed",
            field=models.JSONField(
                blank=True, default=list, help_text="Top-level keys it removed."
            ),
        ),
        migrations.RunPython(convert, unconvert),
        migrations.RemoveField("review", "old_instructions"),
        migrations.RemoveField("review", "proposed"),
        migrations.AlterField(
            model_name="review",
            name="instructions",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="jobs.reviewinstructions",
            ),
        ),
    ]
