"""Identity and access: users, accounts and memberships.

The owner of an account is ``Account.owner``: a NOT NULL foreign key, so the database
guarantees every account has exactly one owner at all times. ``Membership`` rows are the
*other* people's access (sub-accounts); the owner never has one, which the service layer
enforces, so the policy has one place to ask "is this the owner?".
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django_countries.fields import CountryField

from clientarea.core.validators import validate_single_line, validate_time_zone

from . import permissions
from .scope import Scope, scope_from_json
from .tax_numbers import tax_number_clean


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        return self.get(email__iexact=username)

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, password, **extra)


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively; store them trimmed and lower-cased."""
    return email.strip().lower()


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField("email address", max_length=254, unique=True)
    first_name = models.CharField(max_length=150, validators=[validate_single_line])
    last_name = models.CharField(max_length=150, blank=True, validators=[validate_single_line])
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can log in to the back office.")
    date_joined = models.DateTimeField(default=timezone.now)
    # Every time is shown in it; set from the browser at the first login, then in Profile.
    time_zone = models.CharField(
        max_length=64, default="UTC", validators=[validate_time_zone], help_text="IANA zone."
    )

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["first_name"]

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email

    def get_short_name(self) -> str:
        return self.first_name or self.email


class Account(models.Model):
    company_name = models.CharField(max_length=200, blank=True, validators=[validate_single_line])
    address_line1 = models.CharField(
        "address", max_length=200, blank=True, validators=[validate_single_line]
    )
    address_line2 = models.CharField(
        "address (line 2)", max_length=200, blank=True, validators=[validate_single_line]
    )
    city = models.CharField(max_length=100, blank=True, validators=[validate_single_line])
    postcode = models.CharField(max_length=20, blank=True, validators=[validate_single_line])
    # Stored as the ISO 3166 code; chosen, validated and shown by name (django-countries).
    country = CountryField(
        error_messages={"invalid_choice": "Choose a country from the list (%(value)s is not one)."}
    )
    # Printed on invoices. Checked against the country (accounts.tax_numbers): an EU VAT
    # number in the EU, any tax identifier elsewhere; stored compact.
    tax_number = models.CharField(
        "VAT / tax number",
        max_length=40,
        blank=True,
        validators=[validate_single_line],
        help_text="Optional. In the EU: your VAT number, e.g. IE1234567T (the country prefix "
        "may be left out). Elsewhere: your tax identifier. Printed on your invoices.",
    )
    currency = models.CharField(
        max_length=3,
        default="EUR",
        help_text="ISO 4217, e.g. EUR.",
        validators=[validate_single_line],
    )
    credit_balance = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="owned_accounts")
    created_at = models.DateTimeField(default=timezone.now)
    # Closing (clientarea.accounts.ownership): the owner asks, staff confirm. A closed
    # account keeps its rows (invoices, audit trail) until `retain_until`, but nobody can
    # select it any more.
    close_requested_at = models.DateTimeField(null=True, blank=True)
    close_requested_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    retain_until = models.DateField(null=True, blank=True)
    # The kinds of the account's email its owner chose not to receive (see
    # accounts.owner_emails: security and personal emails always go). Cleared when the
    # account changes hands: the choice was the former owner's.
    owner_email_kinds_off = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(credit_balance__gte=0), name="account_credit_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    def clean(self) -> None:
        """The tax number's rules depend on the country (Account Details, the admin)."""
        super().clean()
        try:
            validate_single_line(self.tax_number)
        except ValidationError:
            return  # the field's own validator has said so
        try:
            self.tax_number = tax_number_clean(self.tax_number, country=str(self.country))
        except ValidationError as exc:
            raise ValidationError({"tax_number": exc.messages}) from exc

    @property
    def is_closed(self) -> bool:
        return self.closed_at is not None

    @property
    def display_name(self) -> str:
        return self.company_name or self.owner.get_full_name()


def membership_usable_q(now: Any = None, prefix: str = "") -> models.Q:
    """The condition of a membership that grants access right now: active and not past
    its expiry. `prefix` reaches the membership through a relation ("memberships__"):
    the access query joins it to the account with this same rule (``policy.access_with``)."""
    now = now or timezone.now()
    return models.Q(**{f"{prefix}status": Membership.Status.ACTIVE}) & (
        models.Q(**{f"{prefix}expires_at__isnull": True})
        | models.Q(**{f"{prefix}expires_at__gt": now})
    )


class MembershipQuerySet(models.QuerySet["Membership"]):
    def usable(self, now: Any = None) -> MembershipQuerySet:
        """Memberships that grant access right now: active and not past their expiry."""
        return self.filter(membership_usable_q(now))


class Membership(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"
        # Set by the worker once `expires_at` has passed (access already ended then: the
        # policy compares `expires_at` with the clock on every request).
        EXPIRED = "expired", "Expired"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    permissions = models.JSONField(default=list, blank=True)
    # Resource scope (see scope.py): null = every service and domain; otherwise
    # {"service": [ids], "domain": [ids]}, only those.
    scope = models.JSONField(null=True, blank=True, default=None)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "user"], name="membership_unique_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} on {self.account}"

    @property
    def permission_codes(self) -> frozenset[str]:
        return permissions.expand(self.permissions)

    @property
    def permission_labels(self) -> list[str]:
        return permissions.labels(self.permissions)

    @property
    def scope_items(self) -> Scope | None:
        return scope_from_json(self.scope)

    def is_usable(self, now: Any = None) -> bool:
        now = now or timezone.now()
        if self.status != self.Status.ACTIVE:
            return False
        return self.expires_at is None or self.expires_at > now

    def status_label(self, now: Any = None) -> str:
        """Active / Revoked / Expired, counting an expiry the worker has not swept yet."""
        if self.status == self.Status.ACTIVE and not self.is_usable(now):
            return str(self.Status.EXPIRED.label)
        return str(self.get_status_display())


class Contact(models.Model):
    """A secondary contact: no login, receives the kinds of email the owner picks, once
    the address is confirmed from a link sent to it (so nobody can point the account's
    mail at an address its holder did not agree to)."""

    class Kind(models.TextChoices):
        # The account email kinds (permissions.EmailKind), the ones a contact can receive.
        GENERAL = permissions.EmailKind.GENERAL.value, permissions.EmailKind.GENERAL.label
        INVOICE = permissions.EmailKind.INVOICE.value, permissions.EmailKind.INVOICE.label
        SUPPORT = permissions.EmailKind.SUPPORT.value, permissions.EmailKind.SUPPORT.label
        PRODUCT = permissions.EmailKind.PRODUCT.value, permissions.EmailKind.PRODUCT.label
        DOMAIN = permissions.EmailKind.DOMAIN.value, permissions.EmailKind.DOMAIN.label

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=150, validators=[validate_single_line])
    email = models.EmailField(max_length=254)
    phone = models.CharField(max_length=30, blank=True, validators=[validate_single_line])
    email_kinds = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Set when the address's holder confirms from the link; cleared when the address
    # changes. Until then the contact receives nothing.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # SHA-256 of the open confirmation link's token (empty once confirmed).
    confirmation_token_hash = models.CharField(max_length=64, blank=True, db_index=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    # {kind: user id} for the kinds a sub-account chose (rather than the owner): the
    # contact receives such a kind only while that person's own access covers it, so a
    # contact is never a way to keep receiving what one's grant no longer shows.
    kind_sponsors = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["account", "name"])]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"

    @property
    def is_confirmed(self) -> bool:
        return self.confirmed_at is not None

    def receives(self, kind: str) -> bool:
        """Confirmed and opted in (the policy adds: a sponsor's access still covers it,
        see policy.may_contact_receive)."""
        kinds = self.email_kinds if isinstance(self.email_kinds, list) else []
        return self.is_confirmed and kind in kinds

    def sponsor_of(self, kind: str) -> int | None:
        sponsors = self.kind_sponsors if isinstance(self.kind_sponsors, dict) else {}
        value = sponsors.get(kind)
        return value if isinstance(value, int) else None


class Invitation(models.Model):
    """Pending access for an email address. Only the SHA-256 of the link's token is kept."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    permissions = models.JSONField(default=list, blank=True)
    scope = models.JSONField(null=True, blank=True, default=None)  # as Membership.scope
    # Optional end of the access the invitation grants (not of the link).
    access_expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    invited_by = models.ForeignKey(
        User, null=True, on_delete=models.SET_NULL, related_name="invitations_sent"
    )
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(default=timezone.now)
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-sent_at", "-id"]
        indexes = [models.Index(fields=["account", "status", "-sent_at"])]
        constraints = [
            # At most one live invitation per address and account, even under a race.
            models.UniqueConstraint(
                fields=["account", "email"],
                condition=models.Q(status="pending"),
                name="invitation_one_pending_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"Invitation of {self.email} to {self.account_id}"

    @property
    def permission_labels(self) -> list[str]:
        return permissions.labels(self.permissions)

    @property
    def has_all_permissions(self) -> bool:
        return permissions.is_all(self.permissions)

    @property
    def scope_items(self) -> Scope | None:
        return scope_from_json(self.scope)

    def is_open(self, now: Any = None) -> bool:
        """Can the link still be accepted?"""
        now = now or timezone.now()
        return self.status == self.Status.PENDING and self.expires_at > now


class OwnershipTransfer(models.Model):
    """The owner's offer of the account to a person, accepted from a single-use link
    (only the SHA-256 of its token is kept). Accepting moves ``Account.owner`` in one
    transaction, so the account has exactly one owner at every instant."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="ownership_transfers"
    )
    from_user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    to_email = models.EmailField(max_length=254)
    # Who accepted (or, for a transfer made by staff, who was made owner).
    to_user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The former owner's choices, made when starting the transfer.
    former_owner_stays = models.BooleanField(
        default=True, help_text="Stay as a sub-account with All Permissions (else: leave)."
    )
    keep_payment_methods = models.BooleanField(
        default=False, help_text="Leave the stored payment methods with the account."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    token_hash = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    started_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    by_staff = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "status", "-created_at"])]
        constraints = [
            # One offer at a time per account, even under a race.
            models.UniqueConstraint(
                fields=["account"],
                condition=models.Q(status="pending"),
                name="ownership_transfer_one_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"Transfer of {self.account_id} to {self.to_email}"

    def is_open(self, now: Any = None) -> bool:
        now = now or timezone.now()
        return self.status == self.Status.PENDING and self.expires_at > now
