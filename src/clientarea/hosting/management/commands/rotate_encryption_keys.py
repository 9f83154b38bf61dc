"""Re-encrypt every stored secret with the newest key of FIELD_ENCRYPTION_KEYS.

Rotation: put the new key first in FIELD_ENCRYPTION_KEYS (keep the old ones after it),
deploy, run this command, then remove the old keys.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction

from clientarea.core import crypto
from clientarea.core.models import PendingChange
from clientarea.hosting.models import PanelServer, Service

# Every encrypted column: control-panel passwords, WHM API tokens, and the new password a
# pending change carries until the panel confirms it.
ENCRYPTED_COLUMNS: list[tuple[type[models.Model], str]] = [
    (Service, "password_ciphertext"),
    (PanelServer, "api_token_ciphertext"),
    (PendingChange, "secret_ciphertext"),
]


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (control-panel passwords, panel API tokens, "
        "pending changes) with the first key."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, batch_size: int = 500, **options: Any) -> None:
        rotated = 0
        failed: list[str] = []
        for model, column in ENCRYPTED_COLUMNS:
            manager = model._default_manager
            ids = list(manager.exclude(**{column: ""}).order_by("pk").values_list("pk", flat=True))
            for start in range(0, len(ids), batch_size):
                with transaction.atomic():
                    rows = manager.select_for_update().filter(
                        pk__in=ids[start : start + batch_size]
                    )
                    for pk, token in rows.values_list("pk", column):
                        if not token:  # emptied meanwhile (a pending change finished)
                            continue
                        try:
                            new_token = crypto.rotate(token)
                        except crypto.SecretUnavailable:
                            failed.append(f"{model._meta.verbose_name} {pk}")
                            continue
                        manager.filter(pk=pk).update(**{column: new_token})
                        rotated += 1
        self.stdout.write(f"Re-encrypted {rotated} secret(s) with the first key.")
        if failed:
            raise CommandError(
                f"{len(failed)} secret(s) could not be decrypted with any configured key "
                f"({', '.join(failed)}); keep their old key in FIELD_ENCRYPTION_KEYS and run "
                "the command again."
            )
