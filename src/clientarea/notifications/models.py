"""The durable outbox: every email is a row written in the transaction that caused it."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class OutboxEmail(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Gave up"

    class Kind(models.TextChoices):
        # The kinds a secondary contact can opt in to, plus the personal ones (an
        # invitation or a password reset goes to one person, never to contacts).
        GENERAL = "general", "General"
        INVOICE = "invoice", "Invoices"
        SUPPORT = "support", "Support"
        PRODUCT = "product", "Products & services"
        DOMAIN = "domain", "Domains"
        ACCOUNT = "account", "Account access"
        SECURITY = "security", "Security"

    account = models.ForeignKey(
        "accounts.Account",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="emails",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.GENERAL)
    to_email = models.EmailField(max_length=254)
    to_name = models.CharField(max_length=300, blank=True)
    subject = models.CharField(max_length=300)
    body_text = models.TextField()
    # What `body_text` becomes once the email is delivered (or given up on): the same text
    # with one-time secrets such as an invitation link removed, so that only their hashes
    # stay in the database. Empty: keep the body as it is.
    body_after_send = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    locked_until = models.DateTimeField(null=True, blank=True)
    # Which worker's claim this is; a worker sends a row only while its claim still holds.
    claim_token = models.CharField(max_length=32, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["account", "-created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to_email} ({self.status})"

    # Kinds addressed to one person (invitation links, access changes, resets): listed in
    # the account's email history, but their text is never shown there.
    PERSONAL_KINDS = frozenset({Kind.ACCOUNT.value, Kind.SECURITY.value})

    @property
    def is_personal(self) -> bool:
        return self.kind in self.PERSONAL_KINDS
