import hashlib

import django.db.models.deletion
from django.db import migrations, models


def instructions_back(apps, schema_editor):
    """Going back: each review's own text becomes its run's shared row again (made if new,
    keyed by its SHA-256 as `jobs.waits.review.kind` keys them), so the column can be NOT
    NULL again with every review reading what it read."""
    Review = apps.get_model("jobs", "Review")
    ReviewInstructions = apps.get_model("jobs", "ReviewInstructions")
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        digest = "encode(sha256(convert_to({}, 'UTF8')), 'hex')"
        review, shared = Review._meta.db_table, ReviewInstructions._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {shared} (run_id, digest, text) "  # noqa: S608
                f"SELECT DISTINCT run_id, {digest.format('instructions_text')}, instructions_text "
                f"FROM {review} WHERE instructions_id IS NULL ON CONFLICT DO NOTHING"
            )
            cursor.execute(
                f"UPDATE {review} AS r SET instructions_id = i.id FROM {shared} AS i "  # noqa: S608
                f"WHERE r.instructions_id IS NULL AND i.run_id = r.run_id "
                f"AND i.digest = {digest.format('r.instructions_text')}"
            )
        return
    for review in Review.objects.filter(instructions__isnull=True).iterator():
        text = review.instructions_text
        row, _ = ReviewInstructions.objects.get_or_create(
            run_id=review.run_id,
            digest=hashlib.sha256(text.encode()).hexdigest(),
            defaults={"text": text},
        )
        Review.objects.filter(pk=review.pk).update(instructions=row)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0030_experiment_side_claimed_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="review",
            name="instructions_text",
            field=models.TextField(
                blank=True,
                default="",
                db_default="",
                help_text="The instructions, when not shared (`instructions` is then empty).",
            ),
        ),
        migrations.AlterField(
            model_name="review",
            name="instructions",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to="jobs.reviewinstructions",
            ),
        ),
        migrations.RunPython(migrations.RunPython.noop, instructions_back, elidable=True),
    ]
