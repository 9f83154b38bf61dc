"""State-changing actions of identity and access. Each is one transaction that also
writes its audit event (and queues its email where one is due)."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from clientarea.audit.services import audit_record
from clientarea.core.validators import fields_check
from clientarea.notifications.services import email_send_to_person, notify_owner
from clientarea.security.throttle import throttle_blocked, throttle_consume

from . import permissions
from .models import Account, Contact, Invitation, Membership, User, normalize_email
from .policy import access_for, contact_kinds_grantable, is_owner, may, may_use_owner_power
from .scope import SCOPE_KINDS, Scope, scope_from_json, scope_labels, scope_to_json
from .signals import access_ended
from .tax_numbers import tax_number_clean


class AccessError(Exception):
    """A request the policy refuses for a reason the user should read."""


class InvitationError(Exception):
    """An invitation cannot be sent, resent, cancelled or accepted; the message says why."""


def user_create(
    *,
    email: str,
    password: str | None,
    first_name: str,
    last_name: str = "",
    is_staff: bool = False,
) -> User:
    """Refused (``ValidationError``, by field) for a name the form would refuse: a line
    break or a control character, too long, or no first name."""
    fields_check(User, {"first_name": first_name, "last_name": last_name})
    return User.objects.create_user(
        email=normalize_email(email),
        password=password,
        first_name=first_name,
        last_name=last_name,
        is_staff=is_staff,
    )


@transaction.atomic
def account_create(
    *,
    owner: User,
    company_name: str = "",
    country: str = "IE",
    currency: str = "EUR",
    address_line1: str = "",
    address_line2: str = "",
    city: str = "",
    postcode: str = "",
    tax_number: str = "",
    credit_balance: Decimal = Decimal("0.00"),
    actor: User | None = None,
) -> Account:
    text = {
        "company_name": company_name,
        "country": country.upper(),
        "currency": currency.upper(),
        "address_line1": address_line1,
        "address_line2": address_line2,
        "city": city,
        "postcode": postcode,
        "tax_number": tax_number,
    }
    fields_check(Account, text)  # ValidationError, by field, for what a form would refuse
    try:
        text["tax_number"] = tax_number_clean(tax_number, country=text["country"])
    except ValidationError as exc:
        raise ValidationError({"tax_number": exc.messages}) from exc
    account = Account.objects.create(owner=owner, credit_balance=credit_balance, **text)
    audit_record(
        action="account.created",
        actor=actor,
        account=account,
        target=account,
        is_staff_action=bool(actor and actor.is_staff),
    )
    return account


PROFILE_FIELDS = (
    "company_name",
    "address_line1",
    "address_line2",
    "city",
    "postcode",
    "country",
    "tax_number",
)


@transaction.atomic
def account_update_profile(
    *, account: Account, actor: User, data: dict[str, Any], request: HttpRequest | None = None
) -> Account:
    """Needs the `profile` permission (``AccessError``, whatever the caller checked).
    Refused (``ValidationError``, by field, nothing saved) for a value the form would
    refuse: a line break or a control character in a one-line field, too long, a VAT
    number that is not one (checked against the country it will have), ..."""
    if not may(actor, permissions.Perm.PROFILE, account):
        raise AccessError("You do not have permission to modify the account details.")
    fields_check(Account, {f: data[f] for f in PROFILE_FIELDS if f in data})
    if "tax_number" in data or "country" in data:
        try:
            tax_number = tax_number_clean(
                data.get("tax_number", account.tax_number),
                country=str(data.get("country") or account.country),
            )
        except ValidationError as exc:
            raise ValidationError({"tax_number": exc.messages}) from exc
        data = {**data, "tax_number": tax_number}
    changes = {}
    for field in PROFILE_FIELDS:
        current = str(getattr(account, field))  # the country is a Country: its code
        if field in data and current != data[field]:
            changes[field] = [current, data[field]]
            setattr(account, field, data[field])
    if changes:
        account.save(update_fields=list(changes))
        audit_record(
            action="account.profile_changed",
            actor=actor,
            account=account,
            target=account,
            changes=changes,
            request=request,
        )
    return account


@transaction.atomic
def user_update_profile(
    *,
    user: User,
    first_name: str,
    last_name: str,
    time_zone: str | None = None,
    request: HttpRequest | None = None,
) -> User:
    """Refused (``ValidationError``, by field, nothing saved) for a name the form would
    refuse: a line break or a control character, too long, or no first name; or a time
    zone zoneinfo does not know. ``time_zone=None`` keeps the current one."""
    time_zone = user.time_zone if time_zone is None else time_zone
    fields_check(User, {"first_name": first_name, "last_name": last_name, "time_zone": time_zone})
    changes = {}
    if user.first_name != first_name:
        changes["first_name"] = [user.first_name, first_name]
    if user.last_name != last_name:
        changes["last_name"] = [user.last_name, last_name]
    if user.time_zone != time_zone:
        changes["time_zone"] = [user.time_zone, time_zone]
    if changes:
        user.first_name, user.last_name, user.time_zone = first_name, last_name, time_zone
        user.save(update_fields=["first_name", "last_name", "time_zone"])
        audit_record(
            action="user.profile_changed", actor=user, target=user, changes=changes, request=request
        )
    return user


@transaction.atomic
def membership_grant(
    *,
    account: Account,
    user: User,
    permission_codes: list[str] | tuple[str, ...] | frozenset[str],
    expires_at: datetime | None = None,
    scope: Mapping[str, Iterable[int]] | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
    send_email: bool = True,
) -> Membership:
    """Give `user` access to `account` (or restore it) with exactly these permissions,
    limited to `scope` (None: every service and domain), and tell them by email (unless
    they just accepted an invitation themselves)."""
    if user.pk == account.owner_id:
        raise AccessError("The owner already has every permission on this account.")
    codes = permissions.normalise(list(permission_codes))
    stored_scope = scope_checked(account=account, scope=scope, error=AccessError)
    membership, created = Membership.objects.select_for_update().get_or_create(
        account=account,
        user=user,
        defaults={"permissions": codes, "expires_at": expires_at, "scope": stored_scope},
    )
    if not created:
        membership.permissions = codes
        membership.expires_at = expires_at
        membership.scope = stored_scope
        membership.status = Membership.Status.ACTIVE
        membership.revoked_at = None
        membership.save()
    audit_record(
        action="membership.granted",
        actor=actor,
        account=account,
        target=membership,
        target_label=user.email,
        changes={
            "permissions": codes,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "scope": stored_scope,
        },
        request=request,
    )
    if send_email:
        email_send_to_person(
            to_email=user.email,
            to_name=user.get_full_name(),
            template="accounts/email/access_granted",
            context={
                "account": account,
                "membership": membership,
                "actor": actor,
                **scope_email_context(account, membership.scope_items),
            },
            account=account,
        )
    return membership


@transaction.atomic
def membership_revoke(
    *, membership: Membership, actor: User | None, request: HttpRequest | None = None
) -> Membership:
    """End a sub-account's access at once, on every device: the policy re-reads the
    membership on every request, and `access_ended` voids anything else (API tokens).
    A status change, never a delete: their tickets and history stay attributed."""
    found = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user", "account__owner")
        .filter(pk=membership.pk)
        .first()
    )
    if found is None:  # they became the owner meanwhile (an ownership transfer)
        raise AccessError("This person is no longer a sub-account of this account.")
    membership = found
    if membership.status == Membership.Status.REVOKED:
        return membership
    if (
        actor is not None
        and not actor.is_staff
        and not may_use_owner_power(actor, membership.account, permissions.OwnerPower.MANAGE_USERS)
    ):
        raise AccessError("Only the account owner can revoke access.")
    membership.status = Membership.Status.REVOKED
    membership.revoked_at = timezone.now()
    membership.save(update_fields=["status", "revoked_at"])
    audit_record(
        action="membership.revoked",
        actor=actor,
        account=membership.account,
        target=membership,
        target_label=membership.user.email,
        changes={"permissions": membership.permissions},
        request=request,
    )
    access_ended.send(sender=Membership, membership=membership, reason="revoked")
    email_send_to_person(
        to_email=membership.user.email,
        to_name=membership.user.get_full_name(),
        template="accounts/email/access_ended",
        context={"account": membership.account, "membership": membership, "reason": "revoked"},
        account=membership.account,
    )
    return membership


def _require_owner(account: Account, actor: User) -> None:
    """Owner-only powers, checked again in the service whatever the view did."""
    if not may_use_owner_power(actor, account, permissions.OwnerPower.MANAGE_USERS):
        raise AccessError("Only the account owner can manage users and invitations.")


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()  # membership_update(scope=UNCHANGED): keep the scope


def scope_checked(
    *,
    account: Account,
    scope: Mapping[str, Iterable[int]] | None,
    error: type[Exception] = AccessError,
) -> dict[str, list[int]] | None:
    """The stored form of `scope`, after checking that it names only kinds that exist and
    only items of `account` (one query per kind). A forged id of another account's item,
    or of no item at all, is refused with a message and nothing is stored."""
    if scope is None:
        return None
    unknown = set(scope) - set(SCOPE_KINDS)
    if unknown:
        raise error("A scope can name only services and domains.")
    stored = scope_to_json(scope)
    assert stored is not None
    for name, ids in stored.items():
        if not ids:
            continue
        kind = SCOPE_KINDS[name]
        found = set(
            kind.model._default_manager.filter(
                **{kind.account_field: account, "pk__in": ids}
            ).values_list("pk", flat=True)
        )
        if found != set(ids):
            raise error(
                f"Choose only {kind.label.lower()} of this account: "
                "some of the chosen ones are not (any more)."
            )
    return stored


def scope_within(account: Account, scope: Scope | None) -> Scope | None:
    """`scope` without the items that are no longer `account`'s."""
    if scope is None:
        return None
    out: dict[str, frozenset[int]] = {}
    for name, kind in SCOPE_KINDS.items():
        ids = scope.get(name, frozenset())
        out[name] = frozenset(
            kind.model._default_manager.filter(
                **{kind.account_field: account, "pk__in": sorted(ids)}
            ).values_list("pk", flat=True)
            if ids
            else ()
        )
    return out


def scope_email_context(account: Account, scope: Scope | None) -> dict[str, Any]:
    """What the emails say of a scope: every item, or the named ones (or none left)."""
    return {"scope_all": scope is None, "scope_labels": scope_labels(account, scope)}


def _codes_for_grant(permission_codes: Any) -> list[str]:
    codes = permissions.normalise(list(permission_codes))
    if not codes:
        raise InvitationError("Choose at least one permission, or All Permissions.")
    return codes


@transaction.atomic
def membership_update(
    *,
    membership: Membership,
    actor: User,
    permission_codes: list[str] | tuple[str, ...] | frozenset[str],
    expires_at: datetime | None,
    scope: Mapping[str, Iterable[int]] | None = UNCHANGED,
    request: HttpRequest | None = None,
) -> Membership:
    """Change what a sub-account may do, on which services and domains (`scope`; leave it
    out to keep it) and until when. The owner has no membership, so the owner can never
    be changed here."""
    membership = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user", "account__owner")
        .get(pk=membership.pk)
    )
    _require_owner(membership.account, actor)
    if membership.status == Membership.Status.REVOKED:
        raise AccessError("This person's access was revoked; invite them again to restore it.")
    codes = _codes_for_grant(permission_codes)
    if expires_at is not None and expires_at <= timezone.now():
        raise AccessError("The access expiry date must be in the future.")
    changes: dict[str, Any] = {}
    if codes != membership.permissions:
        changes["permissions"] = [membership.permissions, codes]
    if expires_at != membership.expires_at:
        changes["expires_at"] = [_iso(membership.expires_at), _iso(expires_at)]
    stored_scope = (
        membership.scope
        if scope is UNCHANGED
        else scope_checked(account=membership.account, scope=scope, error=AccessError)
    )
    if stored_scope != membership.scope:
        changes["scope"] = [membership.scope, stored_scope]
    if not changes and membership.status == Membership.Status.ACTIVE:
        return membership
    membership.permissions = codes
    membership.expires_at = expires_at
    membership.scope = stored_scope
    # Extending an expired access restores it.
    membership.status = Membership.Status.ACTIVE
    membership.save(update_fields=["permissions", "expires_at", "scope", "status"])
    audit_record(
        action="membership.permissions_changed",
        actor=actor,
        account=membership.account,
        target=membership,
        target_label=membership.user.email,
        changes=changes,
        request=request,
    )
    _tell_access_changed(membership, actor=actor, scope_changed="scope" in changes)
    return membership


def _tell_access_changed(
    membership: Membership, *, actor: User | None, scope_changed: bool
) -> None:
    """The person's own notice that what they may do or reach changed (`actor` None: a
    service or domain left the account)."""
    email_send_to_person(
        to_email=membership.user.email,
        to_name=membership.user.get_full_name(),
        template="accounts/email/access_changed",
        context={
            "account": membership.account,
            "membership": membership,
            "actor": actor,
            "scope_changed": scope_changed,
            **scope_email_context(membership.account, membership.scope_items),
        },
        account=membership.account,
    )


@transaction.atomic
def scope_item_forget(*, kind: str, obj_id: int, account_id: int) -> int:
    """A service or domain left `account_id` (removed, or moved to another account): take
    it out of every scope of that account that named it, so it never comes back if it
    returns. A scope left empty reaches nothing scoped (it does not widen to "all").
    Called by the domain apps' signal handlers. Returns how many grants changed."""
    changed = 0
    memberships = Membership.objects.select_related("account", "user").filter(
        account_id=account_id, scope__isnull=False
    )
    invitations = Invitation.objects.select_related("account").filter(
        # Expired invitations too: a resend revives them.
        account_id=account_id,
        scope__isnull=False,
        status__in=[Invitation.Status.PENDING, Invitation.Status.EXPIRED],
    )
    rows: list[Membership | Invitation] = [
        *memberships.select_for_update(of=("self",)),
        *invitations.select_for_update(of=("self",)),
    ]
    for row in rows:
        before = scope_from_json(row.scope) or {}
        if obj_id not in before.get(kind, frozenset()):
            continue
        after = {k: set(v) - ({obj_id} if k == kind else set()) for k, v in before.items()}
        stored = scope_to_json(after)
        is_membership = isinstance(row, Membership)
        audit_record(
            action=f"{'membership' if is_membership else 'invitation'}.scope_item_removed",
            account=row.account,
            target=row,
            target_label=row.user.email if isinstance(row, Membership) else row.email,
            changes={"scope": [row.scope, stored], "removed": {kind: obj_id}},
        )
        row.scope = stored
        row.save(update_fields=["scope"])
        changed += 1
        if is_membership and isinstance(row, Membership) and row.is_usable():
            # Like any change to what they reach, the person is told.
            _tell_access_changed(row, actor=None, scope_changed=True)
    return changed


def membership_expire_due(*, now: datetime | None = None) -> int:
    """Record the end of every access whose expiry has passed (run by the worker).

    Access already stopped at `expires_at` (the policy checks the clock on every request);
    this writes the audit event, voids other access like a revocation does and tells the
    person. Returns how many memberships expired."""
    now = now or timezone.now()
    count = 0
    due = Membership.objects.filter(
        status=Membership.Status.ACTIVE, expires_at__lte=now
    ).values_list("pk", flat=True)
    for pk in list(due[:500]):
        with transaction.atomic():
            membership = (
                Membership.objects.select_for_update(of=("self",))
                .select_related("user", "account__owner")
                .filter(pk=pk, status=Membership.Status.ACTIVE, expires_at__lte=now)
                .first()
            )
            if membership is None:
                continue
            membership.status = Membership.Status.EXPIRED
            membership.save(update_fields=["status"])
            audit_record(
                action="membership.expired",
                account=membership.account,
                target=membership,
                target_label=membership.user.email,
                changes={"expires_at": _iso(membership.expires_at)},
            )
            access_ended.send(sender=Membership, membership=membership, reason="expired")
            email_send_to_person(
                to_email=membership.user.email,
                to_name=membership.user.get_full_name(),
                template="accounts/email/access_ended",
                context={
                    "account": membership.account,
                    "membership": membership,
                    "reason": "expired",
                },
                account=membership.account,
            )
            count += 1
    return count


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# --- Invitations ----------------------------------------------------------------------


def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_url(token: str) -> str:
    return f"{settings.SITE_URL}{reverse('accounts:invitation_accept', args=[token])}"


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)  # 32 random bytes
    return token, invitation_token_hash(token)


def _invitation_expiry(now: datetime) -> datetime:
    return now + timedelta(days=getattr(settings, "INVITATION_VALID_DAYS", 7))


def _send_invitation_email(invitation: Invitation, token: str) -> None:
    url = invitation_url(token)
    email_send_to_person(
        to_email=invitation.email,
        template="accounts/email/invitation",
        context={
            "invitation": invitation,
            "account": invitation.account,
            "inviter": invitation.invited_by,
            "permission_labels": invitation.permission_labels,
            "all_permissions": invitation.has_all_permissions,
            "accept_url": url,
            **scope_email_context(invitation.account, invitation.scope_items),
        },
        account=invitation.account,
        redact=[url],
    )


def _refuse_if_already_has_access(account: Account, email: str, *, now: datetime) -> None:
    if normalize_email(account.owner.email) == email:
        raise InvitationError(f"{email} is the owner of this account.")
    if Membership.objects.usable(now).filter(account=account, user__email__iexact=email).exists():
        raise InvitationError(f"{email} already has access to this account.")


def _expire_stale_invitations(account: Account, email: str | None, now: datetime) -> int:
    stale = Invitation.objects.select_for_update().filter(
        account=account, status=Invitation.Status.PENDING, expires_at__lte=now
    )
    if email is not None:
        stale = stale.filter(email=email)
    for invitation in stale:
        invitation.status = Invitation.Status.EXPIRED
        invitation.save(update_fields=["status"])
        audit_record(
            action="invitation.expired",
            account=account,
            target=invitation,
            target_label=invitation.email,
        )
    return len(stale)


@transaction.atomic
def invitation_create(
    *,
    account: Account,
    actor: User,
    email: str,
    permission_codes: list[str] | tuple[str, ...] | frozenset[str],
    access_expires_at: datetime | None = None,
    scope: Mapping[str, Iterable[int]] | None = None,
    request: HttpRequest | None = None,
) -> Invitation:
    """Invite `email` to `account` with these permissions (limited to `scope`, None: every
    service and domain) and queue the email.

    Refused (InvitationError) when the address already has access or a pending
    invitation; only the owner may invite."""
    # Lock the account: invitations to it are decided one at a time. No join in the
    # locking query (a concurrent ownership change would make PostgreSQL drop the row;
    # see ownership._locked_account); the owner is read after the lock.
    account = Account.objects.select_for_update(no_key=True).get(pk=account.pk)
    _require_owner(account, actor)
    if account.close_requested_at is not None:
        raise InvitationError("This account is being closed: it takes no new people.")
    email = normalize_email(email)
    codes = _codes_for_grant(permission_codes)
    now = timezone.now()
    if access_expires_at is not None and access_expires_at <= now:
        raise InvitationError("The access expiry date must be in the future.")
    stored_scope = scope_checked(account=account, scope=scope, error=InvitationError)
    _refuse_if_already_has_access(account, email, now=now)
    _expire_stale_invitations(account, email, now)
    if Invitation.objects.filter(
        account=account, email=email, status=Invitation.Status.PENDING
    ).exists():
        raise InvitationError(
            f"{email} already has a pending invitation. You can resend it from User Management."
        )
    token, token_hash = _new_token()
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                account=account,
                email=email,
                permissions=codes,
                scope=stored_scope,
                access_expires_at=access_expires_at,
                token_hash=token_hash,
                expires_at=_invitation_expiry(now),
                invited_by=actor,
                created_at=now,
                sent_at=now,
            )
    except IntegrityError as exc:  # a concurrent request won the race
        raise InvitationError(f"{email} already has a pending invitation.") from exc
    audit_record(
        action="invitation.sent",
        actor=actor,
        account=account,
        target=invitation,
        target_label=email,
        changes={
            "permissions": codes,
            "scope": stored_scope,
            "access_expires_at": _iso(access_expires_at),
            "expires_at": _iso(invitation.expires_at),
        },
        request=request,
    )
    _send_invitation_email(invitation, token)
    return invitation


def _locked_invitation(invitation: Invitation) -> Invitation:
    return (
        Invitation.objects.select_for_update(of=("self",))
        .select_related("account__owner", "invited_by")
        .get(pk=invitation.pk)
    )


@transaction.atomic
def invitation_resend(
    *, invitation: Invitation, actor: User, request: HttpRequest | None = None
) -> Invitation:
    """Send a new link, valid 7 days from now; the old link stops working."""
    invitation = _locked_invitation(invitation)
    _require_owner(invitation.account, actor)
    if invitation.status not in (Invitation.Status.PENDING, Invitation.Status.EXPIRED):
        raise InvitationError(
            f"This invitation was {invitation.get_status_display().lower()}; "
            "send a new one instead."
        )
    now = timezone.now()
    _refuse_if_already_has_access(invitation.account, invitation.email, now=now)
    if (
        invitation.status == Invitation.Status.EXPIRED
        and Invitation.objects.filter(
            account=invitation.account, email=invitation.email, status=Invitation.Status.PENDING
        ).exists()
    ):
        raise InvitationError(f"{invitation.email} already has a pending invitation.")
    token, token_hash = _new_token()
    invitation.token_hash = token_hash
    invitation.status = Invitation.Status.PENDING
    invitation.expires_at = _invitation_expiry(now)
    invitation.sent_at = now
    invitation.invited_by = actor
    invitation.save(update_fields=["token_hash", "status", "expires_at", "sent_at", "invited_by"])
    audit_record(
        action="invitation.resent",
        actor=actor,
        account=invitation.account,
        target=invitation,
        target_label=invitation.email,
        changes={"expires_at": _iso(invitation.expires_at)},
        request=request,
    )
    _send_invitation_email(invitation, token)
    return invitation


@transaction.atomic
def invitation_cancel(
    *, invitation: Invitation, actor: User, request: HttpRequest | None = None
) -> Invitation:
    invitation = _locked_invitation(invitation)
    _require_owner(invitation.account, actor)
    if invitation.status not in (Invitation.Status.PENDING, Invitation.Status.EXPIRED):
        raise InvitationError(
            f"This invitation was already {invitation.get_status_display().lower()}."
        )
    invitation.status = Invitation.Status.CANCELLED
    invitation.cancelled_at = timezone.now()
    invitation.save(update_fields=["status", "cancelled_at"])
    audit_record(
        action="invitation.cancelled",
        actor=actor,
        account=invitation.account,
        target=invitation,
        target_label=invitation.email,
        request=request,
    )
    return invitation


def invitation_for_token(token: str) -> Invitation | None:
    """The invitation a link points at (any status), or None for an unknown link."""
    if not token or len(token) > 100:
        return None
    return (
        Invitation.objects.select_related("account__owner", "invited_by")
        .filter(token_hash=invitation_token_hash(token))
        .first()
    )


def _check_open(invitation: Invitation, now: datetime) -> None:
    if invitation.status == Invitation.Status.PENDING and invitation.expires_at <= now:
        raise InvitationError("This invitation has expired.")
    if invitation.status != Invitation.Status.PENDING:
        raise InvitationError(f"This invitation was {invitation.get_status_display().lower()}.")


@transaction.atomic
def invitation_accept(*, token: str, user: User, request: HttpRequest | None = None) -> Membership:
    """`user` (who must have the invited address) joins the account with the invitation's
    permissions. The link is single-use."""
    found = invitation_for_token(token)
    if found is None:
        raise InvitationError("This invitation link is not valid.")
    invitation = _locked_invitation(found)
    if invitation.token_hash != invitation_token_hash(token):
        raise InvitationError("This invitation link is not valid.")
    now = timezone.now()
    _check_open(invitation, now)
    if normalize_email(user.email) != invitation.email:
        raise InvitationError(
            "This invitation was sent to a different email address than the one you are "
            "logged in with."
        )
    account = invitation.account
    if account.closed_at is not None or account.close_requested_at is not None:
        raise InvitationError("This account is being closed: it takes no new people.")
    if user.pk == account.owner_id:
        raise InvitationError("You already own this account.")
    if Membership.objects.usable(now).filter(account=account, user=user).exists():
        raise InvitationError("You already have access to this account.")
    membership = membership_grant(
        account=account,
        user=user,
        permission_codes=invitation.permissions,
        expires_at=invitation.access_expires_at,
        # Items that left the account since are not granted (the signal handlers took
        # them out already; this also covers a bulk change that sent no signal).
        scope=scope_within(account, invitation.scope_items),
        actor=user,
        request=request,
        send_email=False,
    )
    invitation.status = Invitation.Status.ACCEPTED
    invitation.accepted_at = now
    invitation.accepted_by = user
    invitation.save(update_fields=["status", "accepted_at", "accepted_by"])
    audit_record(
        action="invitation.accepted",
        actor=user,
        account=account,
        target=invitation,
        target_label=invitation.email,
        changes={"permissions": invitation.permissions},
        request=request,
    )
    notify_owner(
        account=account,
        template="accounts/email/invitation_accepted",
        context={"invitation": invitation, "member": user},
    )
    return membership


@transaction.atomic
def invitation_accept_new_user(
    *,
    token: str,
    first_name: str,
    last_name: str,
    password: str,
    request: HttpRequest | None = None,
) -> tuple[User, Membership]:
    """A person new to the site sets their name and password and joins, in one step."""
    found = invitation_for_token(token)
    if found is None:
        raise InvitationError("This invitation link is not valid.")
    _check_open(found, timezone.now())
    if User.objects.filter(email__iexact=found.email).exists():
        raise InvitationError("You already have a login: log in with it to accept.")
    try:
        with transaction.atomic():
            user = user_create(
                email=found.email, password=password, first_name=first_name, last_name=last_name
            )
    except IntegrityError as exc:  # created by a concurrent request
        raise InvitationError("You already have a login: log in with it to accept.") from exc
    return user, invitation_accept(token=token, user=user, request=request)


def invitation_expire_due(*, now: datetime | None = None) -> int:
    """Mark pending invitations past their 7 days as expired (run by the worker)."""
    now = now or timezone.now()
    count = 0
    accounts = (
        Invitation.objects.filter(status=Invitation.Status.PENDING, expires_at__lte=now)
        .values_list("account_id", flat=True)
        .distinct()
    )
    for account_id in list(accounts[:500]):
        with transaction.atomic():
            account = Account.objects.get(pk=account_id)
            count += _expire_stale_invitations(account, None, now)
    return count


# --- Secondary contacts ---------------------------------------------------------------
#
# A contact receives the account's email of the kinds chosen for it, so choosing kinds is
# a way to read email: a sub-account may choose only kinds its own grant covers, and may
# neither add nor remove the others (the owner's choice stands). The address receives
# nothing until its holder confirms it from a link sent to it; a new address starts over.

CONTACT_FIELDS = ("name", "email", "phone", "email_kinds")


class ContactError(Exception):
    """A contact change the policy refuses; the message says why."""


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


def contact_kinds_for(*, account: Account, actor: User) -> frozenset[str]:
    """The kinds `actor` may choose for the account's contacts (none without access)."""
    access = access_for(actor, account.pk)
    return contact_kinds_grantable(access) if access is not None else frozenset()


def _kind_labels(kinds: Any) -> str:
    labels = dict(Contact.Kind.choices)
    return ", ".join(str(labels[k]) for k in _contact_kinds(kinds))


def _checked_kinds(*, account: Account, actor: User, wanted: Any, current: Any = ()) -> list[str]:
    """The kinds to store: what `actor` chose among the kinds they may choose, plus the
    kinds they may not touch as they were. Choosing a kind outside their grant is refused."""
    grantable = contact_kinds_for(account=account, actor=actor)
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


def _require_contacts_access(account: Account, actor: User) -> None:
    access = access_for(actor, account.pk)
    if access is None or not access.has(permissions.Perm.CONTACTS):
        raise AccessError("You do not have permission to manage this account's contacts.")


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
    *, account: Account, actor: User, data: dict[str, Any], request: HttpRequest | None = None
) -> Contact:
    _require_contacts_access(account, actor)
    _contact_fields_check(data)
    kinds = _checked_kinds(account=account, actor=actor, wanted=data.get("email_kinds"))
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
    *, contact: Contact, actor: User, data: dict[str, Any], request: HttpRequest | None = None
) -> Contact:
    contact = (
        Contact.objects.select_for_update(of=("self",))
        .select_related("account__owner")
        .get(pk=contact.pk)
    )
    account = contact.account
    _require_contacts_access(account, actor)
    _contact_fields_check(data)
    new = {
        "name": data["name"].strip(),
        "email": normalize_email(data["email"]),
        "phone": data.get("phone", "").strip(),
        "email_kinds": _checked_kinds(
            account=account,
            actor=actor,
            wanted=data.get("email_kinds"),
            current=contact.email_kinds,
        ),
    }
    _contact_rules_check(account, new["email"], new["email_kinds"])
    address_changed = new["email"] != contact.email
    beyond_grant = set(contact.email_kinds) - contact_kinds_for(account=account, actor=actor)
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
def contact_delete(*, contact: Contact, actor: User, request: HttpRequest | None = None) -> None:
    contact = Contact.objects.select_for_update().get(pk=contact.pk)
    _require_contacts_access(contact.account, actor)
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
    *, contact: Contact, actor: User, request: HttpRequest | None = None
) -> Contact:
    contact = (
        Contact.objects.select_for_update(of=("self",))
        .select_related("account__owner")
        .get(pk=contact.pk)
    )
    _require_contacts_access(contact.account, actor)
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
