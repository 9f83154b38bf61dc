"""Secondary contacts of an account: adding, changing and removing them, and the
confirmation of their address.

A contact receives the account's email of the kinds chosen for it, so choosing kinds is
a way to read email: a sub-account may choose only kinds its own grant covers, and may
neither add nor remove the others (the owner's choice stands). The address receives
nothing until its holder confirms it from a link sent to it; a new address starts over.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from clientarea.audit.services import audit_record
from clientarea.core.validators import fields_check
from clientarea.notifications.services import email_send_to_person
from clientarea.security.throttle import throttle_blocked, throttle_consume

from .. import permissions
from ..models import Account, Contact, User, normalize_email
from ..policy import Access, access_for, contact_kinds_grantable, is_owner
from ._common import _access_checked, _acting, _new_token, invitation_token_hash
from .errors import ContactError

CONTACT_FIELDS = ("name", "email", "phone", "email_kinds")

CONTACT_IS_OWNER = (
    "This is the account owner's own address: the owner already receives every email of "
    "the account. A contact is someone else."
)
CONTACT_NO_KINDS = "Choose at least one kind of email this contact receives."


def _contact_rules_check(account: Account, email: str, kinds: list[str]) -> None:
    """Not the owner's own address, and at least one kind of email to receive."""
    if normalize_email(email).lower() == account.owner.email.lower():
        raise ContactError(CONTACT_IS_OWNER)
    if not kinds:
        raise ContactError(CONTACT_NO_KINDS)


def _contact_kinds(kinds: Any) -> list[str]:
    valid = [k.value for k in Contact.Kind]
    return [k for k in valid if k in set(kinds or [])]


def contact_kinds_for(
    *, account: Account, actor: User | None = None, access: Access | None = None
) -> frozenset[str]:
    """The kinds the person of `access` (or `actor`, with their whole access) may choose
    for the account's contacts (none without access)."""
    if access is None and actor is not None:
        access = access_for(actor, account.pk)
    if access is None or access.account.pk != account.pk:
        return frozenset()
    return contact_kinds_grantable(access)


def _kind_labels(kinds: Any) -> str:
    labels = dict(Contact.Kind.choices)
    return ", ".join(str(labels[k]) for k in _contact_kinds(kinds))


def _checked_kinds(*, grantable: frozenset[str], wanted: Any, current: Any = ()) -> list[str]:
    """The kinds to store: what the actor chose among the kinds they may choose
    (`grantable`), plus the kinds they may not touch as they were. Choosing a kind
    outside their grant is refused."""
    wanted_kinds = set(_contact_kinds(wanted))
    refused = wanted_kinds - grantable - set(current or [])
    if refused:
        raise ContactError(
            f"You can only choose emails you can read yourself; {_kind_labels(refused)} "
            "is not part of your access."
        )
    kept = {k for k in (current or []) if k not in grantable}
    return _contact_kinds((wanted_kinds & grantable) | kept)


def _sponsors(
    account: Account,
    actor: User,
    kinds: list[str],
    *,
    chosen: Any,
    current: dict[str, int] | None = None,
) -> dict[str, int]:
    """Who answers for each kind a contact receives: kinds the owner chose answer to
    nobody (absent); kinds a sub-account chose (`chosen`) answer to that person, so they
    stop when that person's access no longer covers them."""
    if is_owner(actor, account):
        return {}
    sponsors = {k: v for k, v in (current or {}).items() if k in kinds}
    for kind in chosen:
        if kind in kinds:
            sponsors[kind] = actor.pk
    return sponsors


def contact_confirmation_url(token: str) -> str:
    return f"{settings.SITE_URL}{reverse('accounts:contact_confirm_link', args=[token])}"


def _send_contact_confirmation(contact: Contact, actor: User | None, now: datetime) -> None:
    """A new link (the previous one stops working), to the contact's address alone.
    Limited per account and per address, so nobody can use it to mail someone at will."""
    keys: dict[str, str | int] = {
        "contact-confirm-account": contact.account_id,
        "contact-confirm-address": contact.email,
    }
    if any(throttle_blocked(scope=scope, key=key) for scope, key in keys.items()):
        raise ContactError(
            f"Too many confirmation emails were sent to {contact.email} or from this "
            "account lately. Please try again in an hour."
        )
    for scope, key in keys.items():
        throttle_consume(scope=scope, key=key)
    token, token_hash = _new_token()
    contact.confirmation_token_hash = token_hash
    contact.confirmation_sent_at = now
    contact.save(update_fields=["confirmation_token_hash", "confirmation_sent_at"])
    url = contact_confirmation_url(token)
    email_send_to_person(
        to_email=contact.email,
        to_name=contact.name,
        template="accounts/email/contact_confirm",
        context={
            "contact": contact,
            "account": contact.account,
            "added_by": actor,
            "kind_labels": _kind_labels(contact.email_kinds),
            "confirm_url": url,
            "valid_days": settings.INVITATION_VALID_DAYS,
        },
        account=contact.account,
        redact=[url],
    )


def _contacts_access(
    access: Access | None, actor: User | None, account: Account, obj: Account | Contact
) -> Access:
    """The acting access as it stands now, holding `contacts` on `obj`'s account (else
    ``AccessOutOfReach`` / ``AccessNotPermitted``, both ``AccessError``)."""
    return _access_checked(
        _acting(access, actor, account.pk),
        obj,
        noun="contact" if isinstance(obj, Contact) else "account",
        perm=permissions.Perm.CONTACTS,
        refusal="You do not have permission to manage this account's contacts.",
    )


def _contact_fields_check(data: dict[str, Any]) -> None:
    """A line break or a control character in the name or phone, a malformed address, or a
    value too long: refused (ContactError) as the form refuses it."""
    values = {
        "name": data["name"].strip(),
        "email": normalize_email(data["email"]),
        "phone": data.get("phone", "").strip(),
    }
    fields_check(Contact, values, error=ContactError)


@transaction.atomic
def contact_create(
    *,
    account: Account,
    data: dict[str, Any],
    access: Access | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> Contact:
    """Add a contact for the person of `access` (or `actor`'s whole access), who must
    hold `contacts` on the account now, and send the address its confirmation link."""
    acting = _contacts_access(access, actor, account, account)
    actor = acting.user
    account = acting.account
    _contact_fields_check(data)
    kinds = _checked_kinds(
        grantable=contact_kinds_grantable(acting), wanted=data.get("email_kinds")
    )
    _contact_rules_check(account, data["email"], kinds)
    contact = Contact.objects.create(
        account=account,
        name=data["name"].strip(),
        email=normalize_email(data["email"]),
        phone=data.get("phone", "").strip(),
        email_kinds=kinds,
        kind_sponsors=_sponsors(account, actor, kinds, chosen=kinds),
    )
    audit_record(
        action="contact.added",
        actor=actor,
        account=account,
        target=contact,
        changes={f: getattr(contact, f) for f in CONTACT_FIELDS},
        request=request,
    )
    _send_contact_confirmation(contact, actor, timezone.now())
    return contact


@transaction.atomic
def contact_update(
    *,
    contact: Contact,
    data: dict[str, Any],
    access: Access | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> Contact:
    """Change a contact for the person of `access` (or `actor`'s whole access), who must
    hold `contacts` on the contact's account now; a new address is confirmed again."""
    contact = (
        Contact.objects.select_for_update(of=("self",))
        .select_related("account__owner")
        .get(pk=contact.pk)
    )
    account = contact.account
    acting = _contacts_access(access, actor, account, contact)
    actor = acting.user
    grantable = contact_kinds_grantable(acting)
    _contact_fields_check(data)
    new = {
        "name": data["name"].strip(),
        "email": normalize_email(data["email"]),
        "phone": data.get("phone", "").strip(),
        "email_kinds": _checked_kinds(
            grantable=grantable,
            wanted=data.get("email_kinds"),
            current=contact.email_kinds,
        ),
    }
    _contact_rules_check(account, new["email"], new["email_kinds"])
    address_changed = new["email"] != contact.email
    beyond_grant = set(contact.email_kinds) - grantable
    if address_changed and beyond_grant:
        # Moving an address moves every kind it receives, including ones outside this
        # person's grant: that is the owner's decision.
        raise ContactError(
            f"{contact.name} receives emails you cannot read yourself "
            f"({_kind_labels(beyond_grant)}); only the account owner can change their address."
        )
    # A sub-account answers for the kinds it added, and for every kind when it chose the
    # address; the owner saving the contact answers for all of it.
    added = set(new["email_kinds"]) - set(contact.email_kinds)
    sponsors = _sponsors(
        account,
        actor,
        new["email_kinds"],
        chosen=new["email_kinds"] if address_changed else added,
        current=contact.kind_sponsors if isinstance(contact.kind_sponsors, dict) else {},
    )
    changes = {f: [getattr(contact, f), v] for f, v in new.items() if getattr(contact, f) != v}
    if not changes and sponsors == contact.kind_sponsors:
        return contact
    for field, value in new.items():
        setattr(contact, field, value)
    fields = list(changes)
    if sponsors != contact.kind_sponsors:
        changes["kind_sponsors"] = [contact.kind_sponsors, sponsors]
        contact.kind_sponsors = sponsors
        fields.append("kind_sponsors")
    if address_changed:
        contact.confirmed_at = None
        fields.append("confirmed_at")
    contact.save(update_fields=fields)
    audit_record(
        action="contact.changed",
        actor=actor,
        account=account,
        target=contact,
        changes=changes,
        request=request,
    )
    if address_changed:
        _send_contact_confirmation(contact, actor, timezone.now())
    return contact


@transaction.atomic
def contact_delete(
    *,
    contact: Contact,
    access: Access | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> None:
    contact = (
        Contact.objects.select_for_update(of=("self",))
        .select_related("account__owner")
        .get(pk=contact.pk)
    )
    actor = _contacts_access(access, actor, contact.account, contact).user
    audit_record(
        action="contact.removed",
        actor=actor,
        account=contact.account,
        target=contact,
        changes={f: getattr(contact, f) for f in CONTACT_FIELDS},
        request=request,
    )
    contact.delete()


@transaction.atomic
def contact_confirmation_resend(
    *,
    contact: Contact,
    access: Access | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> Contact:
    contact = (
        Contact.objects.select_for_update(of=("self",))
        .select_related("account__owner")
        .get(pk=contact.pk)
    )
    actor = _contacts_access(access, actor, contact.account, contact).user
    if contact.is_confirmed:
        raise ContactError(f"{contact.email} is already confirmed.")
    audit_record(
        action="contact.confirmation_resent",
        actor=actor,
        account=contact.account,
        target=contact,
        target_label=contact.email,
        request=request,
    )
    _send_contact_confirmation(contact, actor, timezone.now())
    return contact


def contact_for_token(token: str) -> Contact | None:
    """The unconfirmed contact a link points at, while the link is fresh; else None."""
    if not token or len(token) > 100:
        return None
    contact = (
        Contact.objects.select_related("account__owner")
        .filter(confirmation_token_hash=invitation_token_hash(token), confirmed_at__isnull=True)
        .first()
    )
    if contact is None or contact.confirmation_sent_at is None:
        return None
    if (
        contact.confirmation_sent_at + timedelta(days=settings.INVITATION_VALID_DAYS)
        <= timezone.now()
    ):
        return None
    return contact


@transaction.atomic
def contact_confirm(*, token: str, request: HttpRequest | None = None) -> Contact:
    """The address's holder agrees to receive the account's emails. Single-use."""
    found = contact_for_token(token)
    if found is None:
        raise ContactError("This confirmation link is not valid, was already used or has expired.")
    contact = (
        Contact.objects.select_for_update(of=("self",))
        .select_related("account__owner")
        .get(pk=found.pk)
    )
    if contact.confirmation_token_hash != invitation_token_hash(token) or contact.is_confirmed:
        raise ContactError("This confirmation link is not valid, was already used or has expired.")
    contact.confirmed_at = timezone.now()
    contact.confirmation_token_hash = ""
    contact.save(update_fields=["confirmed_at", "confirmation_token_hash"])
    audit_record(
        action="contact.confirmed",
        account=contact.account,
        target=contact,
        target_label=contact.email,
        request=request,
    )
    return contact
