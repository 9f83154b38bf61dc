"""Domains of an account. Names are stored in ASCII (punycode) and shown in Unicode."""

from __future__ import annotations

import re
from datetime import date

from django.core.exceptions import ValidationError
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


class DomainPrice(models.Model):
    """Staff's price list: what renewing a domain of a TLD costs for a period. Renew offers
    only the periods with a price in the account's currency."""

    tld = models.CharField(
        "TLD",
        max_length=63,
        help_text='Without the leading dot, ASCII (punycode), lower-case: "com", "co.uk".',
        validators=[validate_single_line],
    )
    years = models.PositiveSmallIntegerField()
    renew_price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")

    class Meta:
        ordering = ["tld", "currency", "years"]
        constraints = [
            models.UniqueConstraint(
                fields=["tld", "years", "currency"], name="domains_one_price_per_period"
            ),
            models.CheckConstraint(
                condition=models.Q(renew_price__gt=0), name="domains_price_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(years__gte=1, years__lte=10), name="domains_price_years"
            ),
        ]

    def __str__(self) -> str:
        return f".{self.tld} {self.years} year(s): {self.renew_price} {self.currency}"

    def save(self, *args: object, **kwargs: object) -> None:
        self._normalise()
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def clean(self) -> None:
        # Before the uniqueness check, so ".COM" and "com" are one TLD on the form.
        self._normalise()
        if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)*", self.tld):
            raise ValidationError({"tld": 'Enter a TLD such as "com" or "co.uk" (ASCII).'})
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValidationError({"currency": "Enter a three-letter currency code, e.g. EUR."})

    def _normalise(self) -> None:
        self.tld = (self.tld or "").strip().lstrip(".").lower()
        self.currency = (self.currency or "").strip().upper()


class DomainRenewal(models.Model):
    """A renewal a customer ordered: its invoice, then (once paid) the registry's renewal.

    awaiting payment → paid (the invoice was paid; committed with the payment) →
    renewing (handed to the registry through a PendingChange) → done or failed. A failed
    one stays visible on the domain page and in the back office, where staff retry it.
    """

    class State(models.TextChoices):
        AWAITING_PAYMENT = "awaiting", "Awaiting payment"
        PAID = "paid", "Paid, waiting for the registry"
        RENEWING = "renewing", "Being renewed at the registry"
        DONE = "done", "Renewed"
        FAILED = "failed", "Paid, renewal failed"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    domain = models.ForeignKey(Domain, on_delete=models.PROTECT, related_name="renewals")
    years = models.PositiveSmallIntegerField()
    price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    # The billing invoice (an id: domains does not import billing, see core.billable).
    invoice_id = models.PositiveBigIntegerField(null=True, blank=True)
    invoice_number = models.PositiveBigIntegerField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.AWAITING_PAYMENT)
    change = models.ForeignKey(
        "core.PendingChange", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.CharField(max_length=300, blank=True)
    ordered_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["domain", "-created_at"]),
            models.Index(fields=["state", "paid_at"]),
            models.Index(fields=["invoice_id"]),
        ]

    def __str__(self) -> str:
        return f"renewal of {self.domain} for {self.years} year(s) ({self.state})"
