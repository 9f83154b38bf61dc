# Resource scope of memberships and invitations: null = every service and domain.
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_text_refuses_control_characters"),
    ]

    operations = [
        migrations.AddField(
            model_name="invitation",
            name="scope",
            field=models.JSONField(blank=True, default=None, null=True),
        ),
        migrations.AddField(
            model_name="membership",
            name="scope",
            field=models.JSONField(blank=True, default=None, null=True),
        ),
    ]
