"""Re-encrypt every stored secret with the newest key of FIELD_ENCRYPTION_KEYS.

Rotation: put the new key first in FIELD_ENCRYPTION_KEYS (keep the old ones after it),
deploy, run this command, then remove the old keys.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from clientarea.hosting import crypto
from clientarea.hosting.models import Service


class Command(BaseCommand):
    help = "Re-encrypt every stored secret (control-panel passwords) with the first key."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, batch_size: int = 500, **options: Any) -> None:
        rotated = 0
        failed: list[int] = []
        ids = list(
            Service.objects.exclude(password_ciphertext="")
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        for start in range(0, len(ids), batch_size):
            with transaction.atomic():
                rows = Service.objects.select_for_update().filter(
                    pk__in=ids[start : start + batch_size]
                )
                for service_id, token in rows.values_list("pk", "password_ciphertext"):
                    try:
                        new_token = crypto.rotate(token)
                    except crypto.SecretUnavailable:
                        failed.append(service_id)
                        continue
                    Service.objects.filter(pk=service_id).update(password_ciphertext=new_token)
                    rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} secret(s) with the first key.")
        if failed:
            raise CommandError(
                f"{len(failed)} secret(s) could not be decrypted with any configured key "
                f"(services {', '.join(map(str, failed))}); keep their old key in "
                "FIELD_ENCRYPTION_KEYS and run the command again."
            )
