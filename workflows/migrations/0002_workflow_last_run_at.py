
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('workflows', '0001_initial'),
    ]

    operations = [
        migrations.AddField(
            model_name='workflow',
            name='last_run_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
