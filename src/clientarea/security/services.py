"""State-changing actions of account security. Each is one transaction that writes its
audit event and queues the email that tells the user (ASVS 6.3.7)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Exists
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from clientarea.accounts.models import Account, User, normalize_email
from clientarea.accounts.permissions import OwnerPower
from clientarea.accounts.policy import accounts_for, may_use_owner_power
from clientarea.audit.services import audit_record
from clientarea.notifications.services import email_send_to_person

from .models import AccountSecurity, RecoveryCode, TrackedSession
from .sessions import session_end_others
from .twofactor import (
    recovery_codes_create,
    totp_check,
    two_factor_devices,
    user_has_two_factor,
)

EMAIL_CHANGE_SALT = "clientarea.security.email-change"
Reason = TrackedSession.EndReason


class SecurityError(Exception):
    """A request refused for a reason the user should read."""


def _tell(user: User, template: str, **context: Any) -> None:
    email_send_to_person(
        to_email=user.email,
        to_name=user.get_full_name(),
        template=f"security/email/{template}",
        context={"user": user, **context},
    )


def two_factor_enable(
    *, user: User, device: TOTPDevice, token: str, request: HttpRequest | None = None
) -> list[str]:
    """Confirm a pending TOTP device with a code from the app; returns the new recovery
    codes (to show once). Ends the user's other sessions."""
    if device.user_id != user.pk or device.confirmed:
        raise SecurityError("Start the set-up again.")
    if not totp_check(device=device, token=token):
        raise SecurityError("That code is not right. Check the time on your phone and retry.")
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
        codes = recovery_codes_create(user=user)
        audit_record(action="two_factor.enabled", actor=user, target=user, request=request)
        _tell(user, "two_factor_enabled")
    session_end_others(user=user, reason=Reason.TWO_FACTOR, request=request)
    return codes


def two_factor_disable(*, user: User, request: HttpRequest | None = None) -> None:
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        audit_record(action="two_factor.disabled", actor=user, target=user, request=request)
        _tell(user, "two_factor_disabled")
    session_end_others(user=user, reason=Reason.TWO_FACTOR, request=request)


def recovery_codes_regenerate(*, user: User, request: HttpRequest | None = None) -> list[str]:
    if not user_has_two_factor(user):
        raise SecurityError("Turn on two-factor authentication first.")
    with transaction.atomic():
        codes = recovery_codes_create(user=user)
        audit_record(
            action="two_factor.recovery_codes_replaced", actor=user, target=user, request=request
        )
        _tell(user, "recovery_codes_replaced")
    return codes


def password_set(
    *, user: User, password: str, request: HttpRequest | None = None, via: str = "change"
) -> User:
    """Set a new (already validated) password, end the user's other sessions, tell them."""
    with transaction.atomic():
        user.set_password(password)
        user.save(update_fields=["password"])
        audit_record(
            action="user.password_changed",
            actor=user,
            target=user,
            changes={"via": via},
            request=request,
        )
        _tell(user, "password_changed")
    session_end_others(user=user, reason=Reason.PASSWORD, request=request)
    return user


def email_change_request(*, user: User, new_email: str, request: HttpRequest | None = None) -> None:
    """Send a confirmation link to the new address and tell the old one. Nothing changes
    until the link is used. An address already in use gets no link (the form says the
    same either way, so this does not reveal who has a login)."""
    new_email = normalize_email(new_email)
    if new_email == user.email:
        raise SecurityError("That is already your email address.")
    with transaction.atomic():
        audit_record(action="user.email_change_requested", actor=user, target=user, request=request)
        _tell(user, "email_change_requested", new_email=new_email)
        if User.objects.filter(email__iexact=new_email).exists():
            return
        token = signing.dumps(
            {"u": user.pk, "old": user.email, "new": new_email}, salt=EMAIL_CHANGE_SALT
        )
        path = reverse("security:email_change_confirm", args=[token])
        email_send_to_person(
            to_email=new_email,
            to_name=user.get_full_name(),
            template="security/email/email_change_confirm",
            context={
                "user": user,
                "new_email": new_email,
                "confirm_url": f"{settings.SITE_URL}{path}",
            },
        )


def email_change_token_read(token: str) -> dict[str, Any] | None:
    max_age = int(getattr(settings, "EMAIL_CHANGE_TIMEOUT", 24 * 60 * 60))
    try:
        data = signing.loads(token, salt=EMAIL_CHANGE_SALT, max_age=max_age)
    except signing.BadSignature:
        return None
    return data if isinstance(data, dict) else None


def email_change_confirm(*, token: str, request: HttpRequest | None = None) -> User:
    """Apply a confirmed email change. The link works once: it names the old address."""
    data = email_change_token_read(token)
    if data is None:
        raise SecurityError("This link is not valid any more. Ask for a new one.")
    with transaction.atomic():
        user = User.objects.select_for_update().filter(pk=int(data.get("u") or 0)).first()
        if user is None or user.email != data.get("old"):
            raise SecurityError("This link is not valid any more. Ask for a new one.")
        new_email = str(data["new"])
        if User.objects.filter(email__iexact=new_email).exclude(pk=user.pk).exists():
            raise SecurityError("That address is already used by another login.")
        old_email = user.email
        user.email = new_email
        user.save(update_fields=["email"])
        audit_record(
            action="user.email_changed",
            actor=user,
            target=user,
            changes={"email": [old_email, new_email]},
            request=request,
        )
        email_send_to_person(
            to_email=old_email,
            to_name=user.get_full_name(),
            template="security/email/email_changed",
            context={"user": user, "old_email": old_email, "new_email": new_email},
        )
    session_end_others(user=user, reason=Reason.EMAIL, request=request)
    return user


def account_security_for(account: Account) -> AccountSecurity | None:
    return AccountSecurity.objects.filter(account=account).first()


def _two_factor_rule(account_id: int) -> Any:
    return AccountSecurity.objects.filter(account_id=account_id, require_two_factor=True)


def account_requires_two_factor(account_id: int) -> bool:
    return bool(_two_factor_rule(account_id).exists())


# The names under which `two_factor_gate_fields` are read.
TWO_FACTOR_REQUIRED = "two_factor_required"
TWO_FACTOR_ON = "two_factor_on"


TWO_FACTOR_NAMES = (TWO_FACTOR_REQUIRED, TWO_FACTOR_ON)


def two_factor_gate_fields(user_id: int, account_id: int) -> dict[str, Exists]:
    """The account's two-factor rule and whether the user has two-factor on, as expressions
    that the request's one access query reads (``policy.access_with``): asked on every
    request like the access itself, so a rule switched on (or a device removed) holds
    from the very next request, on every process, with no cache to invalidate."""
    return {
        TWO_FACTOR_REQUIRED: Exists(_two_factor_rule(account_id)),
        TWO_FACTOR_ON: Exists(two_factor_devices(user_id)),
    }


def two_factor_missing(values: dict[str, Any]) -> bool:
    """Read from `two_factor_gate_fields`: the account requires two-factor and the user
    has it off."""
    return bool(values[TWO_FACTOR_REQUIRED]) and not values[TWO_FACTOR_ON]


def account_require_two_factor_set(
    *, account: Account, actor: User, required: bool, request: HttpRequest | None = None
) -> AccountSecurity:
    """The owner turns "require two-factor for all users" on or off."""
    # Requiring two-factor of everyone is part of managing the account's users.
    if not may_use_owner_power(actor, account, OwnerPower.MANAGE_USERS):
        raise SecurityError("Only the account owner can change this.")
    if required and not user_has_two_factor(actor):
        raise SecurityError("Turn on two-factor authentication for yourself first.")
    with transaction.atomic():
        setting, _ = AccountSecurity.objects.select_for_update().get_or_create(account=account)
        if setting.require_two_factor != required:
            setting.require_two_factor = required
            setting.updated_at = timezone.now()
            setting.save(update_fields=["require_two_factor", "updated_at"])
            audit_record(
                action="account.two_factor_required" if required else "account.two_factor_optional",
                actor=actor,
                account=account,
                target=account,
                request=request,
            )
    return setting


# Staff actions on a customer's security (the back office's User actions). Each is one
# transaction that audits on every account the customer owns or may use (so the owner's
# Activity Log shows it, marked as a staff action) and emails the customer.


def _audit_staff_action(
    *,
    action: str,
    staff: User,
    user: User,
    request: HttpRequest | None,
    changes: dict[str, Any] | None = None,
) -> None:
    accounts: list[Account | None] = list(accounts_for(user)) or [None]
    for account in accounts:
        audit_record(
            action=action,
            actor=staff,
            account=account,
            target=user,
            target_label=user.email,
            changes=changes,
            request=request,
            is_staff_action=True,
        )


def two_factor_disable_by_staff(
    *, user: User, staff: User, request: HttpRequest | None = None
) -> bool:
    """Staff turn off a customer's two-factor (e.g. a lost phone): the TOTP devices and
    recovery codes go and the customer's sessions end. Returns False (and does nothing)
    when the customer had no two-factor."""
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=user.pk).first()
        if not user_has_two_factor(user) and not RecoveryCode.objects.filter(user=user).exists():
            return False
        TOTPDevice.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        _audit_staff_action(
            action="two_factor.disabled_by_staff", staff=staff, user=user, request=request
        )
        _tell(user, "staff_two_factor_disabled")
        session_end_others(user=user, reason=Reason.STAFF, request=request, actor=staff)
    return True


def sessions_end_by_staff(*, user: User, staff: User, request: HttpRequest | None = None) -> int:
    """Staff end every session of a customer. Returns how many ended (0: nothing done)."""
    with transaction.atomic():
        ended = session_end_others(user=user, reason=Reason.STAFF, request=request, actor=staff)
        if ended:
            _audit_staff_action(
                action="session.all_ended_by_staff",
                staff=staff,
                user=user,
                request=request,
                changes={"sessions": ended},
            )
            _tell(user, "staff_sessions_ended", count=ended)
    return ended


def email_set_by_staff(
    *, user: User, new_email: str, staff: User, request: HttpRequest | None = None
) -> User:
    """Staff change a customer's login email at once (no confirmation link: staff act on
    the customer's request). The old address is told, the customer's sessions end."""
    new_email = normalize_email(new_email)
    try:
        validate_email(new_email)
    except ValidationError as exc:
        raise SecurityError("Enter a valid email address.") from exc
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        old_email = locked.email
        if new_email == old_email:
            raise SecurityError("That is already the user's email address.")
        if User.objects.filter(email__iexact=new_email).exclude(pk=locked.pk).exists():
            raise SecurityError("That address is already used by another login.")
        # Queued while the old address still names this login (its Email History).
        _tell(locked, "staff_email_changed", old_email=old_email, new_email=new_email)
        locked.email = new_email
        locked.save(update_fields=["email"])
        _audit_staff_action(
            action="user.email_changed_by_staff",
            staff=staff,
            user=locked,
            request=request,
            changes={"email": [old_email, new_email]},
        )
        session_end_others(user=locked, reason=Reason.STAFF, request=request, actor=staff)
    user.email = new_email
    return locked


def password_changed_by_staff(
    *, user: User, staff: User, request: HttpRequest | None = None
) -> None:
    """Record a password that staff just set (or disabled) in the back office, inside the
    same transaction: audited, the customer told, their sessions ended."""
    with transaction.atomic():
        _audit_staff_action(
            action="user.password_changed_by_staff", staff=staff, user=user, request=request
        )
        _tell(user, "staff_password_changed")
        session_end_others(user=user, reason=Reason.STAFF, request=request, actor=staff)
