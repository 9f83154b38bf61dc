"""Actions on hosting services; the password never reaches a log line, an audit event or an
email.

What changes the control panel (password, suspension) follows the rule of
``core.outside``: the intent is committed as a PendingChange, the panel is called with no
transaction open, and the result is recorded in a second transaction (audit event and
email with it). An unanswered call leaves the change pending, and the worker settles it
through the reconcilers registered at the end of this module."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from clientarea.accounts.models import Account, User
from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import Access, OutOfReach, access_require, is_owner, may
from clientarea.audit.services import audit_record, client_ip
from clientarea.core.models import PendingChange
from clientarea.core.outside import (
    ChangeOutcome,
    OutsideChangeInFlight,
    OutsideError,
    OutsideRefused,
    OutsideUnavailable,
    OutsideUncertain,
    Reconciled,
    in_transaction,
    last_failed_change,
    outside_call,
    pending_change_begin,
    pending_change_fail,
    pending_change_finish,
    pending_change_secret,
    pending_for,
    register_reconciler,
)
from clientarea.notifications.services import notify_owner

from .crypto import SecretUnavailable
from .drivers import AccountSummary, panel_driver
from .models import Service

logger = logging.getLogger(__name__)

PASSWORD_CHANGE = "hosting.password"
REPLACED_MESSAGE = "A newer password change replaced it."
ACTOR_GONE_MESSAGE = (
    "The person who asked for it no longer has access to the password, so it was not "
    "confirmed with the control panel: set a new password to be sure which one is used."
)
SUSPEND = "hosting.suspend"
UNSUSPEND = "hosting.unsuspend"
_CHANGE_LABELS = {
    PASSWORD_CHANGE: "password change",
    SUSPEND: "suspension",
    UNSUSPEND: "end of the suspension",
}


def change_label(change: PendingChange | None) -> str:
    """How the service page names a change handed to the panel."""
    return _CHANGE_LABELS.get(change.operation, "change") if change is not None else ""


class ServiceActionError(Exception):
    """An action the service's state does not allow; the message is shown to the user."""


class ServiceChangePending(ServiceActionError):
    """Another change of the service is still waiting for the control panel's answer
    (the API's 409)."""


class ServicePanelUnavailable(ServiceActionError):
    """The control panel could not be reached; nothing was changed (the API's 503)."""


class _PasswordSubject:
    """Stands in for a user in Django's password validators, so the similarity check
    compares the new password with the panel username and the service's domain."""

    pk = None  # not a person: no two-factor allowance

    _LABELS = {"username": "control-panel username", "email": "domain"}

    def __init__(self, service: Service) -> None:
        self.username = service.username
        self.email = service.domain
        # ContextWordsValidator: never the username, in any case; not mostly the username
        # and the domain's labels either.
        self.password_forbidden_words = [(service.username, "control-panel username")]
        self.password_context_words = [
            service.username,
            *(label for label in (service.domain or "").split(".")[:-1]),
        ]
        self._meta = SimpleNamespace(
            get_field=lambda name: SimpleNamespace(verbose_name=self._LABELS.get(name, name))
        )


def _notify_owner_if_delegate(
    *,
    service: Service,
    actor: User | None,
    what: str,
    ip_address: str,
    template: str = "hosting/email/password_event",
) -> None:
    """The owner hears about a sub-account touching a password or logging in to the panel
    (never the password, never the login link)."""
    account: Account = service.account
    if actor is None or is_owner(actor, account):
        return
    # To the owner alone: a security notice, not product news for the contacts who
    # receive "product" emails nor for sub-accounts who read product emails.
    notify_owner(
        account=account,
        template=template,
        context={
            "service": service,
            "actor_name": actor.get_full_name(),
            "actor_email": actor.email,
            "what": what,
            "when": timezone.now(),
            "ip_address": ip_address,
        },
    )


def _target(service: Service) -> str:
    return f"hosting.service:{service.pk}"


def _service_id(change: PendingChange) -> int:
    return int(change.target.rsplit(":", 1)[1])


def _checked(service: Service, access: Access, *, lock: bool = False) -> Service:
    """The service fresh from the database, if the policy lets `access` (as it stands
    now) manage its password: a service of another account, outside the scope, or an
    access that has ended is "no such service" (``OutOfReach``); one it reaches without
    View & Modify Product Password is ``NotPermitted``, whichever entry point called."""
    rows = Service.objects.select_related("account", "server")
    row = (rows.select_for_update(of=("self",)) if lock else rows).filter(pk=service.pk).first()
    if row is None:
        raise OutOfReach("No such service.")
    access_require(access, Perm.MANAGE_PRODUCTS, row, noun="service")
    return row


def service_pending_change(service: Service) -> PendingChange | None:
    """The customer's password change of this service still waiting for the panel's
    answer, if any (staff suspensions are the back office's business, not the page's)."""
    change = pending_for(_target(service))
    return change if change is not None and change.operation == PASSWORD_CHANGE else None


def service_last_failed_change(service: Service) -> PendingChange | None:
    """The newest password change of this service that ended without being made, if
    nothing was made after it (the service page says why)."""
    return last_failed_change(_target(service), (PASSWORD_CHANGE,))


@sensitive_variables("password")
def service_password_reveal(
    *, service: Service, access: Access, request: HttpRequest | None = None
) -> str:
    """Decrypt the control-panel password for the person of `access` (View & Modify
    Product Password, the service in reach), and record that they saw it."""
    actor = access.user
    with transaction.atomic():
        locked = _checked(service, access, lock=True)
        if not locked.has_password:
            raise ServiceActionError("No control-panel password is stored for this service yet.")
        try:
            password = locked.decrypt_password()
        except SecretUnavailable as exc:
            raise ServiceActionError(
                "The stored password cannot be read at the moment; please contact support."
            ) from exc
        audit_record(
            action="service.password_revealed",
            actor=actor,
            account=locked.account,
            target=locked,
            request=request,
        )
        _notify_owner_if_delegate(
            service=locked, actor=actor, what="revealed", ip_address=client_ip(request) or ""
        )
    return password


@sensitive_variables("new_password")
def service_password_change(
    *, service: Service, access: Access, new_password: str, request: HttpRequest | None = None
) -> ChangeOutcome:
    """Check the new password's strength, hand it to the panel, then keep it encrypted.

    Raises ValidationError (too weak, by our rules or in the panel's own words),
    ServiceActionError (service state, panel unreachable, a change already pending),
    OutOfReach or NotPermitted (the policy, asked here of `access`); then nothing is
    stored, audited or emailed. A panel that does not answer leaves the change pending
    (``ChangeOutcome.pending``), settled by the worker."""
    actor = access.user
    with transaction.atomic():
        locked = _checked(service, access, lock=True)
        if not locked.password_can_change:
            raise ServiceActionError(
                f"The password of a {locked.get_status_display().lower()} service "
                "cannot be changed."
            )
        validate_password(new_password, user=cast(Any, _PasswordSubject(locked)))
        if not new_password.isprintable() or new_password != new_password.strip():
            raise ValidationError(
                "The password cannot start or end with a space or contain control characters."
            )
        earlier = pending_for(_target(locked))
        if earlier is not None and earlier.operation == PASSWORD_CHANGE:
            # Setting a password is last-writer-wins: the newer one replaces one still
            # unconfirmed (whatever the panel holds now, it gets this one next).
            pending_change_finish(earlier, done=False, message=REPLACED_MESSAGE)
        try:
            change = pending_change_begin(
                operation=PASSWORD_CHANGE,
                target=_target(locked),
                account=locked.account,
                actor=actor,
                params={
                    "ip_address": client_ip(request) or "",
                    # Settled only for the same panel account it was asked for.
                    "username": locked.username,
                    "server_id": locked.server_id,
                },
                secret=new_password,
            )
        except OutsideChangeInFlight as exc:
            raise ServiceChangePending(
                "A change of this service is still waiting for the control panel: try "
                "again in a few minutes."
            ) from exc
    # Committed: the panel is called with no transaction open and no row locked.
    try:
        # Setting the same password twice is harmless, so an unanswered call is retried.
        outside_call(
            lambda: panel_driver().change_password(locked, new_password), retry_uncertain=True
        )
    except OutsideRefused as exc:
        pending_change_fail(change, str(exc))
        raise ValidationError(str(exc)) from None  # the panel's own words, as they are
    except OutsideUnavailable as exc:
        pending_change_fail(change, str(exc))
        raise ServicePanelUnavailable(str(exc)) from None
    except OutsideUncertain:
        return ChangeOutcome(pending=True)
    except Exception:  # a driver bug: the panel may have taken it; the worker asks again
        logger.exception("Password change %s: unexpected error from the panel driver", change.pk)
        return ChangeOutcome(pending=True)
    _password_change_record(change, new_password)
    return ChangeOutcome(pending=False)


@sensitive_variables("new_password")
def _password_change_record(change: PendingChange, new_password: str) -> None:
    """The panel took the password: keep it encrypted, audit and tell the owner, once."""
    with transaction.atomic():
        service = Service.objects.select_related("account").select_for_update(of=("self",))
        row = service.get(pk=_service_id(change))
        if not pending_change_finish(change, done=True):
            return  # already recorded (by the worker, or by the request)
        row.store_password(new_password)
        row.save(update_fields=["password_ciphertext", "password_changed_at"])
        audit_record(
            action="service.password_changed",
            actor=change.actor,
            account=row.account,
            target=row,
            changes={"pending_change": change.key} if change.attempts else None,
            ip_address=change.params.get("ip_address") or None,
        )
        _notify_owner_if_delegate(
            service=row,
            actor=change.actor,
            what="changed",
            ip_address=str(change.params.get("ip_address") or ""),
        )


def _settle_password_change(change: PendingChange) -> Reconciled:
    """A password change left pending: set the same password again (harmless if the panel
    already has it), since the panel cannot tell us which password it holds. Only while
    the person who asked may still do it, for the same panel account."""
    service = (
        Service.objects.select_related("account", "server").filter(pk=_service_id(change)).first()
    )
    if service is None or not service.password_can_change:
        pending_change_fail(change, "The service can no longer take a new password.")
        return Reconciled.FAILED
    if change.actor is None or not may(
        change.actor, Perm.MANAGE_PRODUCTS, service.account, obj=service
    ):
        pending_change_fail(change, ACTOR_GONE_MESSAGE)
        return Reconciled.FAILED
    if (service.username, service.server_id) != (
        change.params.get("username", service.username),
        change.params.get("server_id", service.server_id),
    ):
        pending_change_fail(change, "The service moved to another panel account meanwhile.")
        return Reconciled.FAILED
    password = pending_change_secret(change)
    try:
        outside_call(
            lambda: panel_driver().change_password(service, password), retry_uncertain=True
        )
    except OutsideRefused as exc:
        pending_change_fail(change, str(exc))
        return Reconciled.FAILED
    except (OutsideUnavailable, OutsideUncertain):
        return Reconciled.PENDING
    _password_change_record(change, password)
    return Reconciled.DONE


# --- the control panel's own view and single sign-on ------------------------------------


def _summary_key(service: Service) -> str:
    return f"hosting:summary:{service.pk}"


def service_panel_summary(service: Service) -> AccountSummary | None:
    """Status, disk and bandwidth use as the panel reports them, reused for a minute (the
    panel is asked at most once a minute per service); None if the panel did not answer.
    The caller has already checked that the viewer may see the service."""
    if not service.username or service.status not in Service.PASSWORD_CHANGE_STATUSES:
        return None
    cached = cache.get(_summary_key(service))
    if cached is None and in_transaction():
        return None  # never an outside call inside a transaction, even a read
    if isinstance(cached, AccountSummary):
        return cached
    try:
        summary = outside_call(
            lambda: panel_driver().account_summary(service), retry_uncertain=True
        )
    except OutsideError:
        return None
    except Exception:  # a driver bug must not take the service page down
        logger.exception("Account summary of service %s: unexpected error", service.pk)
        return None
    cache.set(_summary_key(service), summary, settings.PANEL_SUMMARY_CACHE_SECONDS)
    return summary


def service_panel_login(
    *, service: Service, access: Access, request: HttpRequest | None = None
) -> str:
    """A one-time single sign-on URL into the control panel, for the person of `access`
    (View & Modify Product Password, the service in reach). Audited, and the owner is told
    when a sub-account uses it, as for a reveal. The URL is returned to be sent to the
    browser at once: never stored or logged."""
    actor = access.user
    row = _checked(service, access)
    if row.status != Service.Status.ACTIVE:
        raise ServiceActionError(
            f"A {row.get_status_display().lower()} service has no control-panel login."
        )
    try:
        # Not retried after an unanswered call: each answer is a new one-time session.
        url = outside_call(lambda: panel_driver().create_login_session(row))
    except OutsideUncertain:
        raise ServiceActionError(
            "The control panel did not answer; please try again in a moment."
        ) from None
    except OutsideError as exc:
        raise ServiceActionError(str(exc)) from None
    except Exception:  # a driver bug must not be a 500 (nor show its message)
        logger.exception("Log in to cPanel for service %s: unexpected error", row.pk)
        raise ServiceActionError(
            "The control panel could not be reached; please try again later."
        ) from None
    with transaction.atomic():
        audit_record(
            action="service.panel_login",
            actor=actor,
            account=row.account,
            target=row,
            request=request,
        )
        _notify_owner_if_delegate(
            service=row,
            actor=actor,
            what="logged in to",
            ip_address=client_ip(request) or "",
            template="hosting/email/panel_login",
        )
    return url


# --- staff: suspend and unsuspend on the panel ------------------------------------------


def service_suspend(
    *, service: Service, staff: User, reason: str, request: HttpRequest | None = None
) -> ChangeOutcome:
    """Suspend the account on the panel, then record the service as suspended."""
    return _staff_panel_change(service, staff, SUSPEND, reason, request)


def service_unsuspend(
    *, service: Service, staff: User, request: HttpRequest | None = None
) -> ChangeOutcome:
    """Lift the suspension on the panel, then record the service as active."""
    return _staff_panel_change(service, staff, UNSUSPEND, "", request)


_STAFF_CHANGES = {
    SUSPEND: (Service.Status.ACTIVE, Service.Status.SUSPENDED, "service.suspended"),
    UNSUSPEND: (Service.Status.SUSPENDED, Service.Status.ACTIVE, "service.unsuspended"),
}


def _staff_panel_change(
    service: Service, staff: User, operation: str, reason: str, request: HttpRequest | None
) -> ChangeOutcome:
    if not (staff.is_active and staff.is_staff and staff.has_perm("hosting.change_service")):
        raise ServiceActionError("Only staff allowed to change services can do this.")
    before, _after, _action = _STAFF_CHANGES[operation]
    with transaction.atomic():
        row = (
            Service.objects.select_related("account", "server")
            .select_for_update(of=("self",))
            .get(pk=service.pk)
        )
        if row.status != before:
            raise ServiceActionError(
                f"{row} is {row.get_status_display().lower()}: it cannot be "
                f"{'suspended' if operation == SUSPEND else 'unsuspended'}."
            )
        try:
            change = pending_change_begin(
                operation=operation,
                target=_target(row),
                account=row.account,
                actor=staff,
                params={"reason": reason, "ip_address": client_ip(request) or ""},
            )
        except OutsideChangeInFlight as exc:
            raise ServiceActionError(str(exc)) from exc
    driver = panel_driver()
    call = (
        (lambda: driver.suspend(row, reason))
        if operation == SUSPEND
        else (lambda: driver.unsuspend(row))
    )
    try:
        outside_call(call, retry_uncertain=True)  # suspending twice is harmless
    except (OutsideRefused, OutsideUnavailable) as exc:
        pending_change_fail(change, str(exc))
        raise ServiceActionError(str(exc)) from None
    except OutsideUncertain:
        return ChangeOutcome(pending=True)
    except Exception:  # a driver bug: the panel may have done it; the worker asks
        logger.exception("Panel change %s: unexpected error from the panel driver", change.pk)
        return ChangeOutcome(pending=True)
    _staff_change_record(change)
    return ChangeOutcome(pending=False)


def _staff_change_record(change: PendingChange) -> None:
    _before, after, action = _STAFF_CHANGES[change.operation]
    with transaction.atomic():
        row = (
            Service.objects.select_related("account")
            .select_for_update(of=("self",))
            .get(pk=_service_id(change))
        )
        if not pending_change_finish(change, done=True):
            return
        previous = row.status
        row.status = after
        row.save(update_fields=["status"])
        cache.delete(_summary_key(row))
        audit_record(
            action=action,
            actor=change.actor,
            account=row.account,
            target=row,
            changes={"status": [previous, after], "reason": change.params.get("reason", "")},
            is_staff_action=True,
            ip_address=change.params.get("ip_address") or None,
        )


def _settle_staff_change(change: PendingChange) -> Reconciled:
    """A suspension (or its lifting) left pending: the panel's account summary says
    whether the account is suspended now."""
    service = (
        Service.objects.select_related("account", "server").filter(pk=_service_id(change)).first()
    )
    if service is None:
        pending_change_fail(change, "The service no longer exists.")
        return Reconciled.FAILED
    try:
        summary = outside_call(
            lambda: panel_driver().account_summary(service), retry_uncertain=True
        )
    except OutsideRefused as exc:
        pending_change_fail(change, str(exc))
        return Reconciled.FAILED
    except (OutsideUnavailable, OutsideUncertain):
        return Reconciled.PENDING
    if summary.suspended == (change.operation == SUSPEND):
        _staff_change_record(change)
        return Reconciled.DONE
    pending_change_fail(change, "The control panel did not make the change.")
    return Reconciled.FAILED


def register_reconcilers() -> None:
    register_reconciler(PASSWORD_CHANGE, _settle_password_change)
    register_reconciler(SUSPEND, _settle_staff_change)
    register_reconciler(UNSUSPEND, _settle_staff_change)
