# Resource scope of memberships and invitations (filled in by the scope work).
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_text_refuses_control_characters"),
    ]

    operations: list = []
