"""Actions on hosting services. Each is one transaction that writes its audit event and
queues its email; the password never reaches a log line, an audit event or an email."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from clientarea.accounts.models import Account, User
from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import OutOfReach, is_owner, may
from clientarea.audit.services import audit_record, client_ip
from clientarea.notifications.services import notify_owner

from .crypto import SecretUnavailable
from .drivers import panel_driver
from .models import Service


class ServiceActionError(Exception):
    """An action the service's state does not allow; the message is shown to the user."""


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
    *, service: Service, actor: User, what: str, request: HttpRequest | None
) -> None:
    """The owner hears about a sub-account touching a password (never the password)."""
    account: Account = service.account
    if is_owner(actor, account):
        return
    # To the owner alone: a security notice, not product news for the contacts who
    # receive "product" emails nor for sub-accounts who read product emails.
    notify_owner(
        account=account,
        template="hosting/email/password_event",
        context={
            "service": service,
            "actor_name": actor.get_full_name(),
            "actor_email": actor.email,
            "what": what,
            "when": timezone.now(),
            "ip_address": client_ip(request) or "",
        },
    )


def _locked_for(service: Service, actor: User) -> Service:
    """Lock the service's row, then ask the policy whether `actor` may manage its password
    right now: a service of another account, outside the actor's scope or without View &
    Modify Product Password is "no such service", whichever entry point called."""
    locked = Service.objects.select_related("account").select_for_update().get(pk=service.pk)
    if not may(actor, Perm.MANAGE_PRODUCTS, locked.account, obj=locked):
        raise OutOfReach("No such service.")
    return locked


@sensitive_variables("password")
def service_password_reveal(
    *, service: Service, actor: User, request: HttpRequest | None = None
) -> str:
    """Decrypt the control-panel password for `actor`, and record that they saw it."""
    with transaction.atomic():
        locked = _locked_for(service, actor)
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
        _notify_owner_if_delegate(service=locked, actor=actor, what="revealed", request=request)
    return password


@sensitive_variables("new_password")
def service_password_change(
    *, service: Service, actor: User, new_password: str, request: HttpRequest | None = None
) -> Service:
    """Check the new password's strength, hand it to the panel, then keep it encrypted.

    Raises ValidationError (too weak) or ServiceActionError (service state), or the
    driver's PanelError; in every case nothing is stored, audited or emailed."""
    with transaction.atomic():
        locked = _locked_for(service, actor)
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
        panel_driver().change_password(locked, new_password)
        locked.store_password(new_password)
        locked.save(update_fields=["password_ciphertext", "password_changed_at"])
        audit_record(
            action="service.password_changed",
            actor=actor,
            account=locked.account,
            target=locked,
            request=request,
        )
        _notify_owner_if_delegate(service=locked, actor=actor, what="changed", request=request)
    return locked
