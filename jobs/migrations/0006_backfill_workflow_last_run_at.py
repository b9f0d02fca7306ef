from django.db import migrations
from django.db.models import Max


def backfill(apps, schema_editor):
    """Workflows now keep when they were last run; give the existing ones that from runs."""
    Run = apps.get_model("jobs", "Run")
    Workflow = apps.get_model("workflows", "Workflow")
    for workflow_id, last in (
        Run.objects.values_list("workflow_id").annotate(last=Max("created_at")).order_by()
    ):
        Workflow.objects.filter(pk=workflow_id).update(last_run_at=last)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0005_items_run_unchecked"),
        ("workflows", "0002_workflow_last_run_at"),
    ]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
