"""Sub-accounts' access (memberships): granting, changing, revoking and expiring it,
and taking a service or domain that left the account out of every grant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from clientarea.audit.services import audit_record
from clientarea.notifications.services import email_send_to_person

from .. import permissions
from ..models import Account, Invitation, Membership, User
from ..policy import Access
from ..scope import scope_from_json, scope_to_json
from ..signals import access_changed, access_ended
from ._common import (
    _access_checked,
    _acting,
    _codes_for_grant,
    _grant_within,
    _iso,
    _owner_checked,
)
from .errors import AccessError
from .scopes import scope_checked, scope_email_context


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
        if membership.status == Membership.Status.ACTIVE and not membership.is_usable():
            # Past its expiry, not yet marked expired by the worker (an invitation accepted
            # again, access restored): it ended all the same, so what acted on it (tokens)
            # ends now, before it is restored, as membership_update does.
            access_ended.send(sender=Membership, membership=membership, reason="expired")
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
    *,
    membership: Membership,
    actor: User | None = None,
    access: Access | None = None,
    request: HttpRequest | None = None,
) -> Membership:
    """End a sub-account's access at once, on every device: the policy re-reads the
    membership on every request, and `access_ended` voids anything else (API tokens).
    A status change, never a delete: their tickets and history stay attributed.

    For a person (`access`, or `actor`'s whole access) it is the owner's power, checked
    here (``AccessOutOfReach`` for another account's, ``AccessNotPermitted`` for anyone
    but the owner, or a token without the Users power); staff (`actor`) and the system
    (neither) end access from the back office and the account's own lifecycle."""
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
    if access is not None or (actor is not None and not actor.is_staff):
        actor = _access_checked(
            _acting(access, actor, membership.account_id),
            membership,
            noun="user",
            refusal="Only the account owner can revoke access.",
            power=permissions.OwnerPower.MANAGE_USERS,
        ).user
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


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()  # membership_update(scope=UNCHANGED): keep the scope


@transaction.atomic
def membership_update(
    *,
    membership: Membership,
    actor: User | None = None,
    access: Access | None = None,
    permission_codes: list[str] | tuple[str, ...] | frozenset[str],
    expires_at: datetime | None,
    scope: Mapping[str, Iterable[int]] | None = UNCHANGED,
    request: HttpRequest | None = None,
) -> Membership:
    """Change what a sub-account may do, on which services and domains (`scope`; leave it
    out to keep it) and until when. The owner has no membership, so the owner can never
    be changed here. The owner's power, checked here for the person of `access` (or
    `actor`'s whole access): ``AccessOutOfReach`` / ``AccessNotPermitted``."""
    membership = (
        Membership.objects.select_for_update(of=("self",))
        .select_related("user", "account__owner")
        .get(pk=membership.pk)
    )
    acting = _owner_checked(_acting(access, actor, membership.account_id), membership, noun="user")
    actor = acting.user
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
    _grant_within(acting, codes, stored_scope)
    if stored_scope != membership.scope:
        changes["scope"] = [membership.scope, stored_scope]
    if not changes and membership.status == Membership.Status.ACTIVE:
        return membership
    lapsed = (
        membership.status == Membership.Status.ACTIVE
        and membership.expires_at is not None
        and membership.expires_at <= timezone.now()
    )
    if lapsed:
        # Past its expiry, not yet marked expired by the worker: it ended all the same,
        # and what acted on it (tokens, sessions) ends now, before it is restored, so
        # when the worker runs makes no difference.
        access_ended.send(sender=Membership, membership=membership, reason="expired")
    membership.permissions = codes
    membership.expires_at = expires_at
    membership.scope = stored_scope
    # Extending an expired access restores it.
    membership.status = Membership.Status.ACTIVE
    membership.save(update_fields=["permissions", "expires_at", "scope", "status"])
    access_changed.send(sender=Membership, membership=membership)
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
