"""Invitations: sending, resending, cancelling and accepting them, and expiring those
nobody accepted. A link is single-use and only its hash is stored."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from clientarea.audit.services import audit_record
from clientarea.notifications.services import email_send_to_person, notify_owner

from ..models import Account, Invitation, Membership, User, normalize_email
from ..policy import Access
from ._common import (
    _acting,
    _codes_for_grant,
    _grant_within,
    _iso,
    _new_token,
    _owner_checked,
    invitation_token_hash,
)
from .errors import InvitationError
from .memberships import membership_grant
from .profile import user_create
from .scopes import scope_checked, scope_email_context, scope_within


def invitation_url(token: str) -> str:
    return f"{settings.SITE_URL}{reverse('accounts:invitation_accept', args=[token])}"


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
    actor: User | None = None,
    access: Access | None = None,
    email: str,
    permission_codes: list[str] | tuple[str, ...] | frozenset[str],
    access_expires_at: datetime | None = None,
    scope: Mapping[str, Iterable[int]] | None = None,
    request: HttpRequest | None = None,
) -> Invitation:
    """Invite `email` to `account` with these permissions (limited to `scope`, None: every
    service and domain) and queue the email.

    Refused (InvitationError) when the address already has access or a pending
    invitation; only the owner may invite (the person of `access`, or `actor`'s whole
    access, checked here: ``AccessOutOfReach`` / ``AccessNotPermitted``)."""
    # Lock the account: invitations to it are decided one at a time. No join in the
    # locking query (a concurrent ownership change would make PostgreSQL drop the row;
    # see ownership._locked_account); the owner is read after the lock.
    account = Account.objects.select_for_update(no_key=True).get(pk=account.pk)
    acting = _owner_checked(_acting(access, actor, account.pk), account, noun="account")
    actor = acting.user
    if account.close_requested_at is not None:
        raise InvitationError("This account is being closed: it takes no new people.")
    email = normalize_email(email)
    codes = _codes_for_grant(permission_codes)
    now = timezone.now()
    if access_expires_at is not None and access_expires_at <= now:
        raise InvitationError("The access expiry date must be in the future.")
    stored_scope = scope_checked(account=account, scope=scope, error=InvitationError)
    _grant_within(acting, codes, stored_scope)
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
    *,
    invitation: Invitation,
    actor: User | None = None,
    access: Access | None = None,
    request: HttpRequest | None = None,
) -> Invitation:
    """Send a new link, valid 7 days from now; the old link stops working."""
    invitation = _locked_invitation(invitation)
    acting = _owner_checked(
        _acting(access, actor, invitation.account_id), invitation, noun="invitation"
    )
    actor = acting.user
    # A new link gives the grant again: no more than the sender carries (a token).
    _grant_within(acting, list(invitation.permissions), invitation.scope)
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
    *,
    invitation: Invitation,
    actor: User | None = None,
    access: Access | None = None,
    request: HttpRequest | None = None,
) -> Invitation:
    invitation = _locked_invitation(invitation)
    actor = _owner_checked(
        _acting(access, actor, invitation.account_id), invitation, noun="invitation"
    ).user
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
