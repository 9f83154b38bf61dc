"""Support tickets: a thread of messages between the people of an account and staff.

A ticket is opened under the opener's own name and email, snapshotted on the ticket (and
on each message) so the thread keeps saying who wrote what even if a login is later
renamed, revoked or deleted.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage
from django.db import models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from clientarea.core.validators import validate_multi_line, validate_single_line


class Department(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[validate_single_line])
    description = models.CharField(max_length=200, blank=True, validators=[validate_single_line])
    is_active = models.BooleanField(
        default=True, help_text="Customers can open new tickets in this department."
    )
    order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class Ticket(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ANSWERED = "answered", "Answered"
        CUSTOMER_REPLY = "customer_reply", "Customer-Reply"
        CLOSED = "closed", "Closed"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="tickets"
    )
    opener = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="opened_tickets",
        help_text="The login that opened the ticket.",
    )
    opener_name = models.CharField(max_length=300, validators=[validate_single_line])
    opener_email = models.EmailField(max_length=254)
    department = models.ForeignKey(Department, on_delete=models.PROTECT, related_name="tickets")
    subject = models.CharField(max_length=200, validators=[validate_single_line])
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, help_text="Last activity.")
    # The service or domain the ticket is about, if any (at most one): what a sub-account
    # limited to chosen services and domains is shown (besides the tickets it opened).
    # Named by reference, not imported: support does not depend on those apps' code.
    service = models.ForeignKey(
        "hosting.Service",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The service this ticket is about.",
    )
    domain = models.ForeignKey(
        "domains.Domain",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The domain this ticket is about.",
    )

    # Scope kind (accounts.scope) -> the field naming an item of that kind.
    ABOUT_FIELDS = {"service": "service", "domain": "domain"}

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-updated_at"]),
            models.Index(fields=["account", "status", "-updated_at"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(service__isnull=True) | models.Q(domain__isnull=True),
                name="ticket_about_one_item_at_most",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"

    @property
    def about(self) -> Any:
        """The service or domain the ticket is about (or None)."""
        return self.service or self.domain

    @property
    def is_closed(self) -> bool:
        return self.status == self.Status.CLOSED


class TicketMessage(models.Model):
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="messages")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    author_name = models.CharField(max_length=300, validators=[validate_single_line])
    author_email = models.EmailField(max_length=254, blank=True)
    is_staff = models.BooleanField(default=False, help_text="Written by the provider's staff.")
    body = models.TextField(validators=[validate_multi_line])
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["ticket", "created_at"])]

    def __str__(self) -> str:
        return f"{self.author_name} on #{self.ticket_id}"


def attachment_path(instance: Attachment, filename: str) -> str:
    """A random name: nothing the uploader chose ends up in the storage path."""
    suffix = PurePath(filename).suffix.lower()
    safe_suffix = suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ""
    return f"support/attachments/{uuid.uuid4().hex}{safe_suffix}"


class Attachment(models.Model):
    message = models.ForeignKey(TicketMessage, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_path, max_length=200)
    original_name = models.CharField(max_length=255)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.original_name


# The app never deletes an attachment (a ticket is closed, never deleted, and an account
# is kept for its retention period); should a row go all the same (the shell, a cascade),
# its file goes with it, but only once the deletion is committed: never if it rolls back,
# and never inside the transaction (the store may be another machine).
@receiver(post_delete, sender=Attachment, dispatch_uid="support.attachment_file_delete")
def _attachment_file_delete(sender: type[Attachment], instance: Attachment, **kwargs: Any) -> None:
    name = instance.file.name
    if name:
        storage = instance.file.storage
        transaction.on_commit(lambda: _file_delete(storage, name), using=kwargs.get("using"))


def _file_delete(storage: Storage, name: str) -> None:
    try:
        storage.delete(name)
    except OSError as exc:  # the store is down: an orphan nobody can reach, not an error
        logging.getLogger(__name__).warning("Attachment file %s not deleted: %s", name, exc)
