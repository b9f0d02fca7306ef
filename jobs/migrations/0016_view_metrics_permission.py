from django.db import migrations


def grant_to_run_readers(apps, schema_editor):
    """`/metrics` needed any key before; it now needs `jobs.view_metrics`. Users and groups
    that could read runs keep reading the metrics (their scrapers go on working); keys made
    from now on get it as one of the `view_` permissions."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    User = apps.get_model("auth", "User")
    Group = apps.get_model("auth", "Group")
    run_type, _ = ContentType.objects.get_or_create(app_label="jobs", model="run")
    metrics, _ = Permission.objects.get_or_create(
        content_type=run_type,
        codename="view_metrics",
        defaults={"name": "Can read the Prometheus metrics (/metrics)"},
    )
    view_run = Permission.objects.filter(content_type=run_type, codename="view_run").first()
    if view_run is None:
        return  # a new database: nobody holds anything yet
    for user in User.objects.filter(user_permissions=view_run).iterator():
        user.user_permissions.add(metrics)
    for group in Group.objects.filter(permissions=view_run).iterator():
        group.permissions.add(metrics)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("jobs", "0015_run_retried_once"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="run",
            options={
                "permissions": [("view_metrics", "Can read the Prometheus metrics (/metrics)")]
            },
        ),
        migrations.RunPython(grant_to_run_readers, migrations.RunPython.noop),
    ]
