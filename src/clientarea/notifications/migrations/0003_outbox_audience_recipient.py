import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def personal_kinds(apps, schema_editor):
    # "account" (invitations, access changes) and the old per-user "security" emails were
    # all addressed to one person: they are the new "personal" kind, readable by their
    # addressee alone.
    OutboxEmail = apps.get_model("notifications", "OutboxEmail")
    User = apps.get_model("accounts", "User")
    for row in OutboxEmail.objects.filter(kind__in=["account", "security"]).iterator():
        row.kind = "personal"
        row.audience = "personal"
        row.recipient_user = User.objects.filter(email__iexact=row.to_email).first()
        row.save(update_fields=["kind", "audience", "recipient_user"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_contact_confirmation"),
        ("notifications", "0002_outboxemail_body_after_send_outboxemail_claim_token"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxemail",
            name="audience",
            field=models.CharField(
                choices=[
                    ("owner", "The account owner"),
                    ("member", "A person with access to the account"),
                    ("contact", "A secondary contact"),
                    ("personal", "The person it is about"),
                ],
                default="personal",
                max_length=10,
            ),
        ),
        migrations.AddField(
            model_name="outboxemail",
            name="recipient_user",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="outboxemail",
            name="recipient_contact",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="accounts.contact",
            ),
        ),
        migrations.AlterField(
            model_name="outboxemail",
            name="kind",
            field=models.CharField(
                choices=[
                    ("general", "General"),
                    ("invoice", "Invoices"),
                    ("support", "Support"),
                    ("product", "Products & services"),
                    ("domain", "Domains"),
                    ("security", "Security notices"),
                    ("personal", "Personal"),
                ],
                default="general",
                max_length=20,
            ),
        ),
        migrations.AlterField(
            model_name="outboxemail",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Waiting to be sent"),
                    ("sending", "Being sent"),
                    ("sent", "Sent"),
                    ("failed", "Gave up"),
                    ("withheld", "Not sent (no longer entitled)"),
                ],
                default="pending",
                max_length=10,
            ),
        ),
        migrations.RunPython(personal_kinds, migrations.RunPython.noop),
    ]
