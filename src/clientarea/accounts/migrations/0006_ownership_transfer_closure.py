# Ownership transfers and account closure.
from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def _user_fk(**kwargs: Any) -> Any:
    return models.ForeignKey(
        on_delete=kwargs.pop("on_delete", django.db.models.deletion.SET_NULL),
        related_name="+",
        to=settings.AUTH_USER_MODEL,
        **kwargs,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_resource_scope"),
    ]

    operations = [
        migrations.AddField(
            model_name="account",
            name="close_requested_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="account",
            name="close_requested_by",
            field=_user_fk(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="account",
            name="closed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="account",
            name="closed_by",
            field=_user_fk(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="account",
            name="retain_until",
            field=models.DateField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name="OwnershipTransfer",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("to_email", models.EmailField(max_length=254)),
                (
                    "former_owner_stays",
                    models.BooleanField(
                        default=True,
                        help_text="Stay as a sub-account with All Permissions (else: leave).",
                    ),
                ),
                (
                    "keep_payment_methods",
                    models.BooleanField(
                        default=False,
                        help_text="Leave the stored payment methods with the account.",
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("accepted", "Accepted"),
                            ("cancelled", "Cancelled"),
                            ("expired", "Expired"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("token_hash", models.CharField(max_length=64, unique=True)),
                ("expires_at", models.DateTimeField()),
                ("by_staff", models.BooleanField(default=False)),
                ("reason", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="ownership_transfers",
                        to="accounts.account",
                    ),
                ),
                ("cancelled_by", _user_fk(blank=True, null=True)),
                ("from_user", _user_fk(on_delete=django.db.models.deletion.PROTECT)),
                ("started_by", _user_fk(blank=True, null=True)),
                ("to_user", _user_fk(blank=True, null=True)),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(
                        fields=["account", "status", "-created_at"],
                        name="accounts_ow_account_a39753_idx",
                    )
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("status", "pending")),
                        fields=("account",),
                        name="ownership_transfer_one_pending",
                    )
                ],
            },
        ),
    ]
