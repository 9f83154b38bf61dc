# Ownership transfers and account closure (filled in by that work).
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_resource_scope"),
    ]

    operations: list = []
