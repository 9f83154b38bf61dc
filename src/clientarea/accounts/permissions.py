"""The permission catalogue: the single source of truth for what can be granted.

Every view, template menu entry, form and test reads permissions from here. Adding a
permission is one entry in ``CATALOGUE``; nothing else needs a hunt through the code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from django.db import models


class Perm(StrEnum):
    PROFILE = "profile"
    CONTACTS = "contacts"
    PRODUCTS = "products"
    MANAGE_PRODUCTS = "manageproducts"
    DOMAINS = "domains"
    MANAGE_DOMAINS = "managedomains"
    INVOICES = "invoices"
    TICKETS = "tickets"
    EMAILS = "emails"


class OwnerPower(StrEnum):
    """Powers only the account owner ever has; they can never be granted."""

    MANAGE_USERS = "manage_users"
    MANAGE_PAYMENT_METHODS = "manage_payment_methods"
    TRANSFER_OWNERSHIP = "transfer_ownership"
    CLOSE_ACCOUNT = "close_account"


@dataclass(frozen=True)
class Permission:
    code: Perm
    label: str
    help_text: str
    implies: frozenset[Perm] = field(default_factory=frozenset)


CATALOGUE: tuple[Permission, ...] = (
    Permission(
        Perm.PROFILE, "Modify Account Profile", "Edit the account's company and address details."
    ),
    Permission(
        Perm.CONTACTS,
        "View & Manage Contacts",
        "Add, edit and remove secondary contacts and the emails they receive.",
    ),
    Permission(
        Perm.PRODUCTS,
        "View Products & Services",
        "List and view hosting services, without their passwords.",
    ),
    Permission(
        Perm.MANAGE_PRODUCTS,
        "View & Modify Product Password",
        "Reveal and change a service's control-panel password.",
        implies=frozenset({Perm.PRODUCTS}),
    ),
    Permission(Perm.DOMAINS, "View Domains", "List and view domains."),
    Permission(
        Perm.MANAGE_DOMAINS,
        "Manage Domain Settings",
        "Change nameservers, registrar lock and auto-renew.",
        implies=frozenset({Perm.DOMAINS}),
    ),
    Permission(
        Perm.INVOICES,
        "View & Pay Invoices",
        "See invoices, download PDFs, pay them and see the credit balance.",
    ),
    Permission(
        Perm.TICKETS,
        "Open & View Support Tickets",
        "Open tickets under their own name and read the account's tickets.",
    ),
    Permission(
        Perm.EMAILS, "View Email History", "Read copies of the emails the account was sent."
    ),
)

BY_CODE: dict[str, Permission] = {p.code.value: p for p in CATALOGUE}
ALL_CODES: frozenset[str] = frozenset(BY_CODE)

# Role presets only pre-tick boxes on the invite form; what is stored is the codes.
ROLE_PRESETS: dict[str, tuple[str, frozenset[Perm]]] = {
    "accountant": ("Accountant", frozenset({Perm.INVOICES, Perm.EMAILS})),
    "developer": (
        "Developer",
        frozenset({Perm.MANAGE_PRODUCTS, Perm.MANAGE_DOMAINS, Perm.TICKETS}),
    ),
    "partner": ("Partner", frozenset(Perm)),
}


def expand(codes: object) -> frozenset[str]:
    """Return the granted codes plus everything they imply; unknown codes are dropped."""
    if not isinstance(codes, list | tuple | set | frozenset):
        return frozenset()
    result: set[str] = set()
    pending = [c for c in codes if isinstance(c, str) and c in BY_CODE]
    while pending:
        code = pending.pop()
        if code in result:
            continue
        result.add(code)
        pending.extend(i.value for i in BY_CODE[code].implies)
    return frozenset(result)


def normalise(codes: object) -> list[str]:
    """Stored form of a grant: known codes, implied ones added, in catalogue order."""
    granted = expand(codes)
    return [p.code.value for p in CATALOGUE if p.code.value in granted]


def is_all(codes: object) -> bool:
    """Does this grant hold every permission of the catalogue ("All Permissions")?"""
    return expand(codes) >= ALL_CODES


def labels(codes: object) -> list[str]:
    granted = expand(codes)
    return [p.label for p in CATALOGUE if p.code.value in granted]


def choices() -> list[tuple[str, str]]:
    return [(p.code.value, p.label) for p in CATALOGUE]


# --- Email kinds: the grant governs email as it governs pages ------------------------


class EmailKind(models.TextChoices):
    """Every email has exactly one kind; who may receive and read it follows from it."""

    GENERAL = "general", "General"
    INVOICE = "invoice", "Invoices"
    SUPPORT = "support", "Support"
    PRODUCT = "product", "Products & services"
    DOMAIN = "domain", "Domains"
    # Owner-only notices about the account: a product password revealed or changed by a
    # sub-account, someone joining, a staff change to the account's security.
    SECURITY = "security", "Security notices"
    # Addressed to one person about themselves (an invitation, their access, their
    # login): their own alone, never copied to anyone.
    PERSONAL = "personal", "Personal"


# The kinds that are news about the account: the owner receives them, contacts may opt
# in to them, and a person with access receives and reads them when their grant shows
# the same on a page. `None`: any person with access to the account (announcements,
# maintenance notices carry nothing a page would hide from them).
EMAIL_KIND_PERMISSION: dict[str, Perm | None] = {
    EmailKind.GENERAL.value: None,
    EmailKind.INVOICE.value: Perm.INVOICES,
    EmailKind.SUPPORT.value: Perm.TICKETS,
    EmailKind.PRODUCT.value: Perm.PRODUCTS,
    EmailKind.DOMAIN.value: Perm.DOMAINS,
}
ACCOUNT_EMAIL_KINDS: tuple[str, ...] = tuple(EMAIL_KIND_PERMISSION)


def email_kinds_covered(codes: object) -> frozenset[str]:
    """The account email kinds a grant of these permission codes covers."""
    granted = expand(codes)
    return frozenset(
        kind
        for kind, perm in EMAIL_KIND_PERMISSION.items()
        if perm is None or perm.value in granted
    )
