"""The permission catalogue, the email kinds and the small lattice of grants the model
uses. A copy of ``clientarea.accounts.permissions`` (which imports Django); the test
``test_catalogue.py`` checks the copy against the real module."""

from __future__ import annotations

import functools
from collections.abc import Iterable

# Perm, in catalogue order (permissions.CATALOGUE).
PERMS: tuple[str, ...] = (
    "profile",
    "contacts",
    "products",
    "manageproducts",
    "domains",
    "managedomains",
    "invoices",
    "tickets",
    "emails",
)
# Permission.implies.
IMPLIES: dict[str, tuple[str, ...]] = {
    "manageproducts": ("products",),
    "managedomains": ("domains",),
}


def expand(codes: Iterable[str]) -> frozenset[str]:
    """permissions.expand: the codes plus everything they imply."""
    if isinstance(codes, tuple):
        return _expand_tuple(codes)
    return _expand(codes)


@functools.cache
def _expand_tuple(codes: tuple[str, ...]) -> frozenset[str]:
    return _expand(codes)


def _expand(codes: Iterable[str]) -> frozenset[str]:
    out: set[str] = set()
    pending = [c for c in codes if c in PERMS]
    while pending:
        code = pending.pop()
        if code not in out:
            out.add(code)
            pending.extend(IMPLIES.get(code, ()))
    return frozenset(out)


def normalise(codes: Iterable[str]) -> tuple[str, ...]:
    """permissions.normalise: the stored form, in catalogue order (sorted here, so that
    equal grants are equal tuples)."""
    return tuple(sorted(expand(codes)))


ALL_CODES: frozenset[str] = frozenset(PERMS)

# The grants the model's actions choose from: a small lattice ({} is not grantable: the
# services refuse a grant without a permission, ``_codes_for_grant``).
GRANTS: dict[str, tuple[str, ...]] = {
    "INV": normalise(["invoices"]),
    "TE": normalise(["tickets", "emails"]),
    "MP": normalise(["manageproducts"]),
    "ALL": normalise(PERMS),
}


def grant_name(codes: tuple[str, ...]) -> str:
    for name, value in GRANTS.items():
        if value == codes:
            return name
    return "{" + ",".join(codes) + "}"


# Email kinds (permissions.EmailKind) and EMAIL_KIND_PERMISSION.
GENERAL, INVOICE, SUPPORT, PRODUCT, DOMAIN = "general", "invoice", "support", "product", "domain"
SECURITY = "security"
EMAIL_KIND_PERMISSION: dict[str, str | None] = {
    GENERAL: None,
    INVOICE: "invoices",
    SUPPORT: "tickets",
    PRODUCT: "products",
    DOMAIN: "domains",
}
ACCOUNT_EMAIL_KINDS: tuple[str, ...] = tuple(EMAIL_KIND_PERMISSION)


def email_kinds_covered(codes: Iterable[str]) -> frozenset[str]:
    granted = expand(codes)
    return frozenset(k for k, p in EMAIL_KIND_PERMISSION.items() if p is None or p in granted)


# The resource scope: one service and one domain per account. A scope is a sorted tuple of
# item kinds; EVERYTHING (None in the app) is every item.
SERVICE, DOMAIN_ITEM = "service", "domain"
ITEMS: tuple[str, ...] = (SERVICE, DOMAIN_ITEM)
EVERYTHING: tuple[str, ...] = ("*",)
SCOPES: dict[str, tuple[str, ...]] = {
    "all": EVERYTHING,
    "service": (SERVICE,),
    "domain": (DOMAIN_ITEM,),
}


def scope_name(scope: tuple[str, ...]) -> str:
    for name, value in SCOPES.items():
        if value == scope:
            return name
    return "none" if not scope else "+".join(scope)


def in_scope(scope: tuple[str, ...], item: str) -> bool:
    """Access.in_scope."""
    return scope == EVERYTHING or item in scope


def scope_intersect(first: tuple[str, ...], second: tuple[str, ...]) -> tuple[str, ...]:
    """policy.scope_intersect."""
    if first == EVERYTHING:
        return second
    if second == EVERYTHING:
        return first
    return tuple(sorted(set(first) & set(second)))


def scope_within(wanted: tuple[str, ...], limit: tuple[str, ...]) -> bool:
    """api.services._scope_within (for a scoped limit)."""
    return limit == EVERYTHING or (wanted != EVERYTHING and set(wanted) <= set(limit))


# The kinds of email about one item (scope.scoped_email_kinds), with the item kind they
# are about; and policy.per_item_email_kinds (support: each about one ticket).
ITEM_OF_EMAIL_KIND: dict[str, str] = {PRODUCT: SERVICE, DOMAIN: DOMAIN_ITEM}
PER_ITEM_EMAIL_KINDS: frozenset[str] = frozenset({PRODUCT, DOMAIN, SUPPORT})

# The model's emails: (kind, the item it is about or ""), one of each.
EMAILS: tuple[tuple[str, str], ...] = (
    (GENERAL, ""),
    (INVOICE, ""),
    (SUPPORT, ""),
    (PRODUCT, SERVICE),
    (DOMAIN, DOMAIN_ITEM),
    (SECURITY, ""),
)

# What a contact may be given (one kind per contact in the model).
CONTACT_KINDS: tuple[str, ...] = (PRODUCT,)

# The clock: how many ticks a link or an access lasts.
INVITATION_TICKS = 2  # 7 days
TRANSFER_TICKS = 1  # 72 hours
TOKEN_TICKS = 2  # a token's mandatory expiry
ACCESS_TICKS = 1  # "Access expires" set on a grant
