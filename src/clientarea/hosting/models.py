"""Hosting services (products) of an account.

The control-panel password is stored only as a Fernet token (see ``crypto.py``) in
``password_ciphertext``; it is decrypted on purpose, in ``services.service_password_reveal``,
and nowhere else. Lists defer the column, so a page never even loads it.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.utils import timezone

from clientarea.accounts.models import Account
from clientarea.core.validators import validate_single_line

from . import crypto


class PanelServer(models.Model):
    """A control-panel server (WHM) the provider's services live on. The API token is kept
    encrypted like the service passwords; TLS verification can be turned off only in
    DEBUG or DEMO_MODE (a self-signed test server), never for real customers."""

    name = models.CharField(max_length=100, unique=True, validators=[validate_single_line])
    hostname = models.CharField(
        max_length=253,
        validators=[validate_single_line],
        help_text="The WHM server's host name, as its TLS certificate names it.",
    )
    port = models.PositiveIntegerField(default=2087, help_text="WHM's HTTPS port (2087).")
    api_user = models.CharField(
        "API user",
        max_length=64,
        default="root",
        validators=[validate_single_line],
        help_text="The WHM user the API token belongs to (root or a reseller).",
    )
    api_token_ciphertext = models.TextField("API token", blank=True, editable=False)
    verify_tls = models.BooleanField(
        "verify TLS certificate",
        default=True,
        help_text="Check the server's certificate. Only a test server may go without.",
    )
    ca_file = models.CharField(
        "CA bundle",
        max_length=500,
        blank=True,
        validators=[validate_single_line],
        help_text="A PEM file of the CA that signed the server's certificate, if it is not "
        "a public one (empty: the system's CAs).",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "control-panel server"

    def __str__(self) -> str:
        return f"{self.name} ({self.hostname})"

    def __repr__(self) -> str:  # never the token, not even encrypted
        return f"<PanelServer {self.pk}: {self.name}>"

    @property
    def has_api_token(self) -> bool:
        return bool(self.api_token_ciphertext)

    def set_api_token(self, token: str) -> None:
        self.api_token_ciphertext = crypto.encrypt(token) if token else ""

    def api_token(self) -> str:
        """The plaintext token, for the driver's Authorization header only."""
        return crypto.decrypt(self.api_token_ciphertext) if self.api_token_ciphertext else ""


class Service(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        TERMINATED = "terminated", "Terminated"
        CANCELLED = "cancelled", "Cancelled"

    class BillingCycle(models.TextChoices):
        FREE = "free", "Free"
        ONE_TIME = "one_time", "One Time"
        MONTHLY = "monthly", "Monthly"
        QUARTERLY = "quarterly", "Quarterly"
        SEMIANNUALLY = "semiannually", "Semi-Annually"
        ANNUALLY = "annually", "Annually"
        BIENNIALLY = "biennially", "Biennially"
        TRIENNIALLY = "triennially", "Triennially"

    # The control panel can take a new password only while the account exists on it.
    PASSWORD_CHANGE_STATUSES = frozenset({Status.ACTIVE, Status.SUSPENDED})

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="services")
    product_name = models.CharField(max_length=200, validators=[validate_single_line])
    domain = models.CharField(max_length=253, blank=True, validators=[validate_single_line])
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    billing_cycle = models.CharField(
        max_length=12, choices=BillingCycle.choices, default=BillingCycle.MONTHLY
    )
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    next_due_date = models.DateField(null=True, blank=True)
    server = models.ForeignKey(
        PanelServer,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="services",
        help_text="The control-panel server the account lives on.",
    )
    server_hostname = models.CharField(
        max_length=253, blank=True, validators=[validate_single_line]
    )
    username = models.CharField(
        "control-panel username", max_length=100, blank=True, validators=[validate_single_line]
    )
    password_ciphertext = models.TextField(blank=True, editable=False)
    password_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["product_name", "id"]
        indexes = [
            models.Index(fields=["account", "product_name", "id"]),
            models.Index(fields=["account", "status"]),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(amount__gte=0), name="hosting_service_amount_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product_name} ({self.domain})" if self.domain else self.product_name

    def __repr__(self) -> str:  # never include the secret, not even encrypted
        return f"<Service {self.pk}: {self}>"

    @property
    def has_password(self) -> bool:
        return bool(self.password_ciphertext)

    @property
    def password_can_change(self) -> bool:
        return self.status in self.PASSWORD_CHANGE_STATUSES

    def store_password(self, raw_password: str) -> None:
        """Encrypt and keep `raw_password` (the caller saves the model)."""
        self.password_ciphertext = crypto.encrypt(raw_password) if raw_password else ""
        self.password_changed_at = timezone.now()

    def decrypt_password(self) -> str:
        """The plaintext password. Call only from the audited reveal service."""
        return crypto.decrypt(self.password_ciphertext) if self.password_ciphertext else ""

    @property
    def status_badge(self) -> str:
        return {
            self.Status.ACTIVE: "badge-ok",
            self.Status.PENDING: "badge-warn",
            self.Status.SUSPENDED: "badge-danger",
        }.get(self.Status(self.status), "")
