"""Domains of an account. Names are stored in ASCII (punycode) and shown in Unicode."""

from __future__ import annotations

from datetime import date

from django.db import models
from django.utils import timezone

from clientarea.accounts.models import Account
from clientarea.core.validators import validate_single_line

from . import names

EXPIRING_SOON_DAYS = 30


class Domain(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PENDING_TRANSFER = "pending_transfer", "Pending Transfer"
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        TRANSFERRED_AWAY = "transferred_away", "Transferred Away"
        CANCELLED = "cancelled", "Cancelled"

    # Settings can be changed at the registrar only while the domain is registered here.
    MANAGEABLE_STATUSES = frozenset({Status.ACTIVE})

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="domains")
    name = models.CharField(
        max_length=253,
        unique=True,
        help_text="ASCII (punycode) form, lower-case.",
        validators=[validate_single_line],
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    registration_date = models.DateField(null=True, blank=True)
    expiry_date = models.DateField(null=True, blank=True)
    auto_renew = models.BooleanField(default=True)
    registrar_lock = models.BooleanField(default=True)
    nameservers = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["account", "name"]),
            models.Index(fields=["account", "status"]),
        ]

    def __str__(self) -> str:
        return self.unicode_name

    @property
    def unicode_name(self) -> str:
        return names.to_unicode(self.name)

    @property
    def is_idn(self) -> bool:
        return self.unicode_name != self.name

    @property
    def is_manageable(self) -> bool:
        return self.status in self.MANAGEABLE_STATUSES

    @property
    def nameserver_list(self) -> list[str]:
        return [ns for ns in (self.nameservers or []) if isinstance(ns, str)]

    @property
    def unicode_nameservers(self) -> list[str]:
        return [names.to_unicode(ns) for ns in self.nameserver_list]

    def days_to_expiry(self, today: date | None = None) -> int | None:
        if self.expiry_date is None:
            return None
        return (self.expiry_date - (today or timezone.localdate())).days

    @property
    def expires_soon(self) -> bool:
        days = self.days_to_expiry()
        return (
            self.status == self.Status.ACTIVE
            and days is not None
            and 0 <= days <= EXPIRING_SOON_DAYS
        )

    @property
    def status_badge(self) -> str:
        if self.status == self.Status.ACTIVE:
            return "badge-warn" if self.expires_soon else "badge-ok"
        if self.status in (self.Status.PENDING, self.Status.PENDING_TRANSFER):
            return "badge-warn"
        if self.status == self.Status.EXPIRED:
            return "badge-danger"
        return ""
