from django.db import migrations


def classify_legacy_rows(apps, schema_editor):
    """Rows queued before emails had audiences: make them obey the grant too.

    - The owner-only "control-panel password revealed/changed" notices were queued as
      "product" emails: they are owner-only security notices, readable by the owner alone.
    - Account emails get the audience their address had (the owner, a secondary contact,
      a person with access), so the worker re-checks the ones still waiting to be sent.
    """
    OutboxEmail = apps.get_model("notifications", "OutboxEmail")
    Account = apps.get_model("accounts", "Account")
    Contact = apps.get_model("accounts", "Contact")
    User = apps.get_model("accounts", "User")
    # Only rows from before audiences existed: they all carry the default, "personal".
    rows = OutboxEmail.objects.filter(account__isnull=False, audience="personal").exclude(
        kind="personal"
    )
    owners = dict(Account.objects.values_list("pk", "owner_id"))
    for row in rows.iterator():
        owner = User.objects.filter(pk=owners.get(row.account_id)).first()
        fields = []
        if row.kind == "product" and ": the control-panel password of " in row.subject:
            row.kind = "security"
            fields.append("kind")
        if owner is not None and owner.email.lower() == row.to_email.lower():
            row.audience, row.recipient_user = "owner", owner
        else:
            contact = Contact.objects.filter(
                account_id=row.account_id, email__iexact=row.to_email
            ).first()
            if contact is not None:
                row.audience, row.recipient_contact = "contact", contact
            else:
                person = User.objects.filter(email__iexact=row.to_email).first()
                row.audience, row.recipient_user = "member", person
        fields += ["audience", "recipient_user", "recipient_contact"]
        row.save(update_fields=fields)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_contact_kind_sponsors"),
        ("notifications", "0004_outbox_about_item"),
    ]

    operations = [migrations.RunPython(classify_legacy_rows, migrations.RunPython.noop)]
