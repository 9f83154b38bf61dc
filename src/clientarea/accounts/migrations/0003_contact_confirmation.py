from django.db import migrations, models
from django.utils import timezone


def confirm_existing(apps, schema_editor):
    # Contacts added before confirmation existed were chosen by the account and have been
    # receiving mail: they keep doing so rather than going silent on upgrade.
    Contact = apps.get_model("accounts", "Contact")
    Contact.objects.filter(confirmed_at__isnull=True).update(confirmed_at=timezone.now())


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_alter_membership_status_invitation"),
    ]

    operations = [
        migrations.AddField(
            model_name="contact",
            name="confirmed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="contact",
            name="confirmation_token_hash",
            field=models.CharField(blank=True, db_index=True, max_length=64),
        ),
        migrations.AddField(
            model_name="contact",
            name="confirmation_sent_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(confirm_existing, migrations.RunPython.noop),
    ]
