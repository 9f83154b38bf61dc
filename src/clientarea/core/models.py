"""The shell's own records: changes handed to an outside system and not yet settled, and
the worker's periodic turns."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone


def _new_key() -> str:
    return secrets.token_hex(16)


class PendingChange(models.Model):
    """The committed intent of one change an outside system (panel, registrar) carries
    out; see ``core.outside`` for the rule it serves. `params` never holds a secret: a
    new password travels encrypted in `secret_ciphertext`, erased once the change ends."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    # Sent to the outside system where it takes one, so a retried call is not applied twice.
    key = models.CharField(max_length=64, unique=True, default=_new_key, editable=False)
    operation = models.CharField(max_length=60)  # e.g. "hosting.password"
    target = models.CharField(max_length=80)  # e.g. "hosting.service:12"
    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="pending_changes"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    params = models.JSONField(default=dict, blank=True)
    secret_ciphertext = models.TextField(blank=True, editable=False)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    message = models.CharField(max_length=300, blank=True)  # why it failed, for the customer
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_check_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "next_check_at"])]
        constraints = [
            # One change at a time per object: a second one waits for the first to settle.
            models.UniqueConstraint(
                fields=["target"],
                condition=models.Q(state="pending"),
                name="core_one_pending_change_per_target",
            )
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.target} ({self.state})"

    def __repr__(self) -> str:  # never the secret, not even encrypted
        return f"<PendingChange {self.pk}: {self}>"


class PeriodicTurn(models.Model):
    """One periodic task of the worker shared by every worker process (the housekeeping):
    when it may next run, and, on SQLite, until when a run in progress holds it. See
    ``core.periodic``: one process per interval takes the turn, however many run."""

    name = models.CharField(max_length=60, primary_key=True)
    # The next run may start from this moment on (the last run's start + the interval).
    due_at = models.DateTimeField(default=timezone.now)
    # SQLite, which has no advisory locks: a run in progress keeps others out until it
    # ends or this moment passes (a worker that died mid-run does not hold it for good).
    held_until = models.DateTimeField(null=True, blank=True)
    # Which process took the last turn (a random id per run, for the log and the admin).
    holder = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"{self.name} (due {self.due_at:%Y-%m-%d %H:%M:%S})"
