"""Ownership transfer, closing an account, and deleting one's own login.

``Account.owner`` is a NOT NULL foreign key, so the database holds exactly one owner at
every instant; moving it is one UPDATE inside one transaction that first locks the account
row, then the transfer row. Every action that decides about the owner (starting,
accepting, cancelling or expiring a transfer, staff transfers, closing) takes the account
lock first, so they are decided one at a time and in the same order (no deadlock).

The owner never holds a membership: accepting deletes the new owner's membership row (if
they were a sub-account) in the same transaction, and the former owner either gets a
fresh membership with All Permissions or leaves the account.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from clientarea.audit.services import audit_record
from clientarea.notifications.services import email_send_to_person, notify, notify_owner
from clientarea.security.services import account_requires_two_factor
from clientarea.security.twofactor import user_has_two_factor

from . import permissions
from .closing import ClosureItem, closure_blockers
from .models import Account, Invitation, Membership, OwnershipTransfer, User, normalize_email
from .policy import may_use_owner_power
from .services import AccessError, _new_token, invitation_token_hash
from .signals import access_ended, account_closed, ownership_transferred

GENERAL = permissions.EmailKind.GENERAL.value


class OwnershipError(Exception):
    """A transfer or a closing that cannot be done; the message says why."""


class ClosureRefused(OwnershipError):
    """Closing is refused while something blocks it (unpaid invoices)."""

    def __init__(self, message: str, blockers: list[ClosureItem]) -> None:
        super().__init__(message)
        self.blockers = blockers


def transfer_valid_hours() -> int:
    return int(getattr(settings, "OWNERSHIP_TRANSFER_VALID_HOURS", 72))


def retention_years() -> int:
    return int(getattr(settings, "ACCOUNT_RETENTION_YEARS", 7))


def transfer_url(token: str) -> str:
    return f"{settings.SITE_URL}{reverse('accounts:ownership_transfer_link', args=[token])}"


def _locked_account(account_id: int) -> Account:
    # No join in the locking query: on PostgreSQL a row updated by the transaction we
    # waited for is re-checked against the joined rows of the old snapshot, so a join on
    # the owner would lose the account whose owner just changed. FOR NO KEY UPDATE: rows
    # that merely refer to the account (an audit event, an email written by a revocation
    # holding its membership lock) must not wait for us while we wait for them.
    return Account.objects.select_for_update(no_key=True).get(pk=account_id)


def _locked_transfer(transfer_id: int) -> OwnershipTransfer:
    return (
        OwnershipTransfer.objects.select_for_update(of=("self",))
        .select_related("from_user", "to_user", "started_by")
        .get(pk=transfer_id)
    )


def _require_power(account: Account, actor: User, power: permissions.OwnerPower) -> None:
    """Owner-only powers, checked again here whatever the view did."""
    if not may_use_owner_power(actor, account, power):
        if power is permissions.OwnerPower.CLOSE_ACCOUNT:
            raise AccessError("Only the account owner can close the account.")
        raise AccessError("Only the account owner can transfer the account.")


def _notice(account: Account, transfer: OwnershipTransfer, event: str) -> None:
    """The account's news of the step: to its owner (at that moment) and the contacts
    who receive general emails."""
    notify(
        account=account,
        kind=GENERAL,
        template="accounts/email/ownership_transfer_notice",
        context={"transfer": transfer, "event": event},
    )


def _tell(to_email: str, account: Account, transfer: OwnershipTransfer, event: str) -> None:
    """A personal note to one of the two people about the step."""
    email_send_to_person(
        to_email=to_email,
        template="accounts/email/ownership_transfer_outcome",
        context={"transfer": transfer, "account": account, "event": event},
        account=account,
    )


# --- transfer -------------------------------------------------------------------------


def transfer_pending_for(account: Account) -> OwnershipTransfer | None:
    return (
        OwnershipTransfer.objects.filter(account=account, status=OwnershipTransfer.Status.PENDING)
        .select_related("from_user")
        .first()
    )


def _expire_if_stale(transfer: OwnershipTransfer, account: Account, now: datetime) -> bool:
    """Record the expiry of a pending transfer past its time (the lock is held)."""
    if transfer.status != OwnershipTransfer.Status.PENDING or transfer.expires_at > now:
        return False
    transfer.status = OwnershipTransfer.Status.EXPIRED
    transfer.finished_at = now
    transfer.save(update_fields=["status", "finished_at"])
    audit_record(
        action="ownership_transfer.expired",
        account=account,
        target=transfer,
        target_label=transfer.to_email,
    )
    _notice(account, transfer, "expired")
    _tell(transfer.to_email, account, transfer, "expired")
    return True


@transaction.atomic
def ownership_transfer_start(
    *,
    account: Account,
    actor: User,
    to_email: str,
    former_owner_stays: bool,
    keep_payment_methods: bool,
    request: HttpRequest | None = None,
) -> OwnershipTransfer:
    """The owner offers the account to `to_email` (a sub-account's address or anyone's);
    the person accepts from the emailed link within 72 hours."""
    account = _locked_account(account.pk)
    _require_power(account, actor, permissions.OwnerPower.TRANSFER_OWNERSHIP)
    if account.closed_at is not None or account.close_requested_at is not None:
        raise OwnershipError("This account is being closed: it cannot be transferred.")
    email = normalize_email(to_email)
    if not email:
        raise OwnershipError("Choose a person or enter an email address.")
    if email == normalize_email(account.owner.email):
        raise OwnershipError("You already own this account: choose someone else.")
    now = timezone.now()
    pending = transfer_pending_for(account)
    if pending is not None:
        pending = _locked_transfer(pending.pk)
        if not _expire_if_stale(pending, account, now):
            raise OwnershipError(
                f"A transfer to {pending.to_email} is already pending: cancel it first."
            )
    token, token_hash = _new_token()
    try:
        with transaction.atomic():
            transfer = OwnershipTransfer.objects.create(
                account=account,
                from_user=account.owner,
                to_email=email,
                to_user=User.objects.filter(email__iexact=email).first(),
                former_owner_stays=former_owner_stays,
                keep_payment_methods=keep_payment_methods,
                token_hash=token_hash,
                expires_at=now + timedelta(hours=transfer_valid_hours()),
                started_by=actor,
                created_at=now,
            )
    except IntegrityError as exc:  # a concurrent request started one first
        raise OwnershipError("A transfer of this account is already pending.") from exc
    audit_record(
        action="ownership_transfer.started",
        actor=actor,
        account=account,
        target=transfer,
        target_label=email,
        changes={
            "to": email,
            "former_owner": "stays" if former_owner_stays else "leaves",
            "payment_methods": "kept" if keep_payment_methods else "removed",
            "expires_at": transfer.expires_at.isoformat(),
        },
        request=request,
    )
    _notice(account, transfer, "started")
    url = transfer_url(token)
    email_send_to_person(
        to_email=email,
        template="accounts/email/ownership_transfer_offer",
        context={
            "transfer": transfer,
            "account": account,
            "accept_url": url,
            "valid_hours": transfer_valid_hours(),
            "two_factor_required": account_requires_two_factor(account.pk),
        },
        account=account,
        redact=[url],
    )
    return transfer


@transaction.atomic
def ownership_transfer_cancel(
    *, transfer: OwnershipTransfer, actor: User, request: HttpRequest | None = None
) -> OwnershipTransfer:
    """The owner (or staff) withdraws a pending offer; its link stops working."""
    account = _locked_account(transfer.account_id)
    if not actor.is_staff:
        _require_power(account, actor, permissions.OwnerPower.TRANSFER_OWNERSHIP)
    transfer = _locked_transfer(transfer.pk)
    if transfer.status != OwnershipTransfer.Status.PENDING:
        raise OwnershipError(f"This transfer was already {transfer.get_status_display().lower()}.")
    transfer.status = OwnershipTransfer.Status.CANCELLED
    transfer.finished_at = timezone.now()
    transfer.cancelled_by = actor
    transfer.save(update_fields=["status", "finished_at", "cancelled_by"])
    audit_record(
        action="ownership_transfer.cancelled",
        actor=actor,
        account=account,
        target=transfer,
        target_label=transfer.to_email,
        request=request,
        is_staff_action=actor.is_staff and not may_use_owner_power(actor, account, _TRANSFER),
    )
    _notice(account, transfer, "cancelled")
    _tell(transfer.to_email, account, transfer, "cancelled")
    return transfer


_TRANSFER = permissions.OwnerPower.TRANSFER_OWNERSHIP


def transfer_for_token(token: str) -> OwnershipTransfer | None:
    """The transfer a link points at (any status), or None for an unknown link."""
    if not token or len(token) > 100:
        return None
    return (
        OwnershipTransfer.objects.select_related("account__owner", "from_user")
        .filter(token_hash=invitation_token_hash(token))
        .first()
    )


def transfer_refusal(transfer: OwnershipTransfer, now: datetime | None = None) -> str | None:
    """Why the link cannot be used any more ("accepted", "cancelled", "expired"), or None."""
    now = now or timezone.now()
    if transfer.status == OwnershipTransfer.Status.PENDING:
        if transfer.expires_at <= now or transfer.account.closed_at is not None:
            return "expired"
        return None
    return str(transfer.status)


def _move_ownership(
    *,
    account: Account,
    transfer: OwnershipTransfer,
    new_owner: User,
    actor: User,
    request: HttpRequest | None,
    by_staff: bool,
) -> None:
    """Make `new_owner` the owner of the locked `account`: one UPDATE of the owner, the
    new owner's membership deleted (the owner never holds one), the former owner kept as
    a sub-account with All Permissions or gone, as they chose."""
    # Lock the new owner's login: a deletion of it that raced us has committed by now,
    # and an account is never handed to a deleted login.
    if not User.objects.select_for_update().filter(pk=new_owner.pk, is_active=True).exists():
        raise OwnershipError(f"{new_owner.email} cannot log in: the account stays where it is.")
    former = account.owner
    now = timezone.now()
    removed = Membership.objects.filter(account=account, user=new_owner)
    was_member = False
    for membership in removed:
        was_member = True
        if membership.status == Membership.Status.ACTIVE and not membership.is_usable(now):
            # Past its expiry, not yet marked expired by the worker: that access ended all
            # the same, so what acted on it (tokens) ends before the person becomes owner.
            access_ended.send(sender=Membership, membership=membership, reason="expired")
    removed.delete()
    account.owner = new_owner
    account.save(update_fields=["owner"])
    if transfer.former_owner_stays:
        Membership.objects.update_or_create(
            account=account,
            user=former,
            defaults={
                "permissions": permissions.normalise(sorted(permissions.ALL_CODES)),
                "scope": None,  # every service and domain: they owned them all
                "status": Membership.Status.ACTIVE,
                "expires_at": None,
                "revoked_at": None,
                "created_at": now,
            },
        )
    transfer.status = OwnershipTransfer.Status.ACCEPTED
    transfer.to_user = new_owner
    transfer.finished_at = now
    transfer.save(update_fields=["status", "to_user", "finished_at"])
    audit_record(
        action="ownership_transfer.accepted",
        actor=actor,
        account=account,
        target=transfer,
        target_label=new_owner.email,
        changes={
            "owner": [former.email, new_owner.email],
            "former_owner": "stays" if transfer.former_owner_stays else "leaves",
            "payment_methods": "kept" if transfer.keep_payment_methods else "removed",
            "new_owner_was_sub_account": was_member,
            **({"reason": transfer.reason} if transfer.reason else {}),
        },
        request=request,
        is_staff_action=by_staff,
    )
    ownership_transferred.send(
        sender=Account,
        account=account,
        former_owner=former,
        new_owner=new_owner,
        former_owner_stays=transfer.former_owner_stays,
        keep_payment_methods=transfer.keep_payment_methods,
        actor=actor,
    )
    _notice(account, transfer, "accepted")
    _tell(former.email, account, transfer, "accepted")


@transaction.atomic
def ownership_transfer_accept(
    *, token: str, user: User, request: HttpRequest | None = None
) -> Account:
    """`user` (who must have the invited address, and two-factor on when the account
    requires it) becomes the owner. The link is single-use."""
    found = transfer_for_token(token)
    if found is None:
        raise OwnershipError("This transfer link is not valid.")
    account = _locked_account(found.account_id)
    transfer = _locked_transfer(found.pk)
    if transfer.token_hash != invitation_token_hash(token):
        raise OwnershipError("This transfer link is not valid.")
    now = timezone.now()
    if transfer.status == OwnershipTransfer.Status.PENDING and transfer.expires_at <= now:
        raise OwnershipError("This transfer offer has expired.")
    if transfer.status != OwnershipTransfer.Status.PENDING:
        raise OwnershipError(f"This transfer offer was {transfer.get_status_display().lower()}.")
    if normalize_email(user.email) != transfer.to_email:
        raise OwnershipError(
            "This offer was sent to a different email address than the one you are logged in with."
        )
    if not user.is_active:
        raise OwnershipError("This login cannot accept the offer.")
    if account.closed_at is not None or account.close_requested_at is not None:
        raise OwnershipError("This account is being closed: it cannot be transferred.")
    if account.owner_id != transfer.from_user_id:
        raise OwnershipError("The account changed hands since this offer was made.")
    if user.pk == account.owner_id:
        raise OwnershipError("You already own this account.")
    if account_requires_two_factor(account.pk) and not user_has_two_factor(user):
        raise OwnershipError(
            "This account requires two-factor authentication: turn it on under Security, "
            "then open the link again."
        )
    membership = (
        Membership.objects.select_for_update(of=("self",))
        .filter(account=account, user=user)
        .first()
    )
    if (
        membership is not None
        and membership.status == Membership.Status.REVOKED
        and membership.revoked_at is not None
        and membership.revoked_at >= transfer.created_at
    ):
        # The owner removed this person after offering them the account: the later
        # decision wins, and the offer with it.
        raise OwnershipError("The owner removed your access after making this offer.")
    _move_ownership(
        account=account,
        transfer=transfer,
        new_owner=user,
        actor=user,
        request=request,
        by_staff=False,
    )
    return account


@transaction.atomic
def ownership_transfer_by_staff(
    *,
    account: Account,
    staff: User,
    new_owner: User,
    reason: str,
    former_owner_stays: bool,
    keep_payment_methods: bool,
    request: HttpRequest | None = None,
) -> OwnershipTransfer:
    """Staff make `new_owner` the owner at once (a lost owner, a company sale), with a
    reason. A pending offer is cancelled first. Audited and emailed like an acceptance."""
    if not staff.is_staff:
        raise AccessError("Only staff can transfer an account from the back office.")
    reason = reason.strip()
    if not reason:
        raise OwnershipError("Give the reason for the transfer.")
    account = _locked_account(account.pk)
    if account.closed_at is not None:
        raise OwnershipError("This account is closed.")
    if account.close_requested_at is not None:
        # Only the owner asks for closure: a new owner must not inherit the former
        # owner's request. Confirm or withdraw it first.
        raise OwnershipError(
            "The owner asked to close this account: confirm or withdraw that first."
        )
    if new_owner.pk == account.owner_id:
        raise OwnershipError(f"{new_owner.email} already owns this account.")
    if not new_owner.is_active:
        raise OwnershipError(f"{new_owner.email} cannot log in: choose an active login.")
    if account_requires_two_factor(account.pk) and not user_has_two_factor(new_owner):
        raise OwnershipError(
            "This account requires two-factor authentication, which the new owner has not "
            "turned on yet."
        )
    pending = transfer_pending_for(account)
    if pending is not None:
        ownership_transfer_cancel(transfer=pending, actor=staff, request=request)
    _, token_hash = _new_token()  # never sent: staff transfers have no link
    now = timezone.now()
    transfer = OwnershipTransfer.objects.create(
        account=account,
        from_user=account.owner,
        to_email=normalize_email(new_owner.email),
        to_user=new_owner,
        former_owner_stays=former_owner_stays,
        keep_payment_methods=keep_payment_methods,
        token_hash=token_hash,
        expires_at=now,
        started_by=staff,
        by_staff=True,
        reason=reason,
        created_at=now,
    )
    _move_ownership(
        account=account,
        transfer=transfer,
        new_owner=new_owner,
        actor=staff,
        request=request,
        by_staff=True,
    )
    return transfer


def ownership_transfer_expire_due(*, now: datetime | None = None) -> int:
    """Record the expiry of offers past their 72 hours (run by the worker). The links
    already stopped working at `expires_at`; this audits and tells both people."""
    now = now or timezone.now()
    count = 0
    due = OwnershipTransfer.objects.filter(
        status=OwnershipTransfer.Status.PENDING, expires_at__lte=now
    ).values_list("pk", "account_id")
    for pk, account_id in list(due[:500]):
        with transaction.atomic():
            account = _locked_account(account_id)
            transfer = _locked_transfer(pk)
            if _expire_if_stale(transfer, account, now):
                count += 1
    return count


# --- closing ---------------------------------------------------------------------------


@transaction.atomic
def account_close_request(
    *, account: Account, actor: User, request: HttpRequest | None = None
) -> Account:
    """The owner asks to close the account; staff confirm it. Refused (ClosureRefused,
    listing them) while invoices are unpaid."""
    account = _locked_account(account.pk)
    _require_power(account, actor, permissions.OwnerPower.CLOSE_ACCOUNT)
    if account.closed_at is not None:
        raise OwnershipError("This account is already closed.")
    if account.close_requested_at is not None:
        raise OwnershipError("You already asked to close this account; we will confirm it.")
    pending = transfer_pending_for(account)
    if pending is not None and not _expire_if_stale(
        _locked_transfer(pending.pk), account, timezone.now()
    ):
        raise OwnershipError("A transfer of this account is pending: cancel it first.")
    blockers = closure_blockers(account)
    if blockers:
        raise ClosureRefused(
            "The account cannot be closed while invoices are unpaid: pay them, or ask us "
            "to cancel them.",
            blockers,
        )
    account.close_requested_at = timezone.now()
    account.close_requested_by = actor
    account.save(update_fields=["close_requested_at", "close_requested_by"])
    audit_record(
        action="account.close_requested",
        actor=actor,
        account=account,
        target=account,
        request=request,
    )
    notify_owner(account=account, template="accounts/email/account_close_requested", context={})
    return account


@transaction.atomic
def account_close_withdraw(
    *, account: Account, actor: User, request: HttpRequest | None = None
) -> Account:
    """The owner changes their mind before staff confirm."""
    account = _locked_account(account.pk)
    _require_power(account, actor, permissions.OwnerPower.CLOSE_ACCOUNT)
    if account.close_requested_at is None or account.closed_at is not None:
        raise OwnershipError("There is no closing request to withdraw.")
    account.close_requested_at = None
    account.close_requested_by = None
    account.save(update_fields=["close_requested_at", "close_requested_by"])
    audit_record(
        action="account.close_withdrawn",
        actor=actor,
        account=account,
        target=account,
        request=request,
    )
    return account


def _retain_until(today: date) -> date:
    years = retention_years()
    try:
        return today.replace(year=today.year + years)
    except ValueError:  # 29 February
        return today.replace(year=today.year + years, day=28)


@transaction.atomic
def account_close_confirm(
    *, account: Account, staff: User, request: HttpRequest | None = None
) -> Account:
    """Staff confirm the owner's request: every sub-account's access ends at once, pending
    invitations and transfers are cancelled, and the account is closed (kept, with its
    invoices and audit trail, until the retention period ends)."""
    if not staff.is_staff:
        raise AccessError("Only staff can confirm the closing of an account.")
    account = _locked_account(account.pk)
    if account.closed_at is not None:
        raise OwnershipError("This account is already closed.")
    if account.close_requested_at is None:
        raise OwnershipError("The owner has not asked to close this account.")
    blockers = closure_blockers(account)
    if blockers:
        raise ClosureRefused("Invoices are unpaid: settle or cancel them first.", blockers)
    now = timezone.now()
    pending = transfer_pending_for(account)
    if pending is not None:
        ownership_transfer_cancel(transfer=pending, actor=staff, request=request)
    # Invitations first: an acceptance holding one finishes before we go on, and the
    # membership it made is ended below with the others.
    invitations = list(
        Invitation.objects.select_for_update().filter(
            account=account, status=Invitation.Status.PENDING
        )
    )
    for invitation in invitations:
        invitation.status = Invitation.Status.CANCELLED
        invitation.cancelled_at = now
        invitation.save(update_fields=["status", "cancelled_at"])
        audit_record(
            action="invitation.cancelled",
            actor=staff,
            account=account,
            target=invitation,
            target_label=invitation.email,
            changes={"reason": "account closed"},
            request=request,
            is_staff_action=True,
        )
    # Usable access ends now; an access already past its expiry is the worker's to record.
    memberships = list(
        Membership.objects.usable(now)
        .select_for_update(of=("self",))
        .select_related("user")
        .filter(account=account)
    )
    for membership in memberships:
        membership.status = Membership.Status.REVOKED
        membership.revoked_at = now
        membership.save(update_fields=["status", "revoked_at"])
        audit_record(
            action="membership.revoked",
            actor=staff,
            account=account,
            target=membership,
            target_label=membership.user.email,
            changes={"reason": "account closed"},
            request=request,
            is_staff_action=True,
        )
        access_ended.send(sender=Membership, membership=membership, reason="closed")
        email_send_to_person(
            to_email=membership.user.email,
            to_name=membership.user.get_full_name(),
            template="accounts/email/access_ended",
            context={"account": account, "membership": membership, "reason": "closed"},
            account=account,
        )
    account.closed_at = now
    account.closed_by = staff
    account.retain_until = _retain_until(timezone.localdate())
    account.save(update_fields=["closed_at", "closed_by", "retain_until"])
    audit_record(
        action="account.closed",
        actor=staff,
        account=account,
        target=account,
        changes={
            "sub_accounts_ended": len(memberships),
            "invitations_cancelled": len(invitations),
            "retain_until": account.retain_until.isoformat(),
        },
        request=request,
        is_staff_action=True,
    )
    account_closed.send(sender=Account, account=account, staff=staff)
    # Nobody can select the account now, so this is the owner's personal email.
    email_send_to_person(
        to_email=account.owner.email,
        to_name=account.owner.get_full_name(),
        template="accounts/email/account_closed",
        context={"account": account},
        account=account,
        to_user=account.owner,
    )
    return account


# --- the owner's own login --------------------------------------------------------------


def open_accounts_owned_by(user: User) -> list[Account]:
    return list(Account.objects.filter(owner=user, closed_at__isnull=True).order_by("pk"))


@transaction.atomic
def user_delete_own_login(*, user: User, password: str, request: HttpRequest | None = None) -> None:
    """A person deletes their own login: refused while they own an open account (an
    account is never left without its owner). The row stays, anonymised and unable to
    log in, so the tickets, payments and audit events it is named in stay attributed."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.is_active:
        raise OwnershipError("This login was already deleted.")
    if not user.check_password(password):
        raise OwnershipError("The password is not correct.")
    owned = open_accounts_owned_by(user)
    if owned:
        names = ", ".join(a.display_name for a in owned)
        raise OwnershipError(f"You own {names}: transfer or close it before deleting your login.")
    now = timezone.now()
    for membership in (
        Membership.objects.select_for_update(of=("self",))
        .filter(user=user, status=Membership.Status.ACTIVE)
        .select_related("account")
    ):
        membership.status = Membership.Status.REVOKED
        membership.revoked_at = now
        membership.save(update_fields=["status", "revoked_at"])
        audit_record(
            action="membership.left",
            actor=user,
            account=membership.account,
            target=membership,
            target_label=user.email,
            request=request,
        )
        access_ended.send(sender=Membership, membership=membership, reason="left")
    Invitation.objects.filter(email=normalize_email(user.email), status="pending").update(
        status=Invitation.Status.CANCELLED, cancelled_at=now
    )
    audit_record(
        action="user.deleted", actor=user, target=user, target_label=user.email, request=request
    )
    user.email = f"deleted-{user.pk}@deleted.invalid"
    user.first_name = "Deleted"
    user.last_name = "user"
    user.is_active = False
    user.set_unusable_password()
    user.save(update_fields=["email", "first_name", "last_name", "is_active", "password"])
