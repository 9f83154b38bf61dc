"""Actions on domains: each goes through the registrar driver, in one transaction that
also writes its audit event. If the registrar refuses, nothing is stored."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.http import HttpRequest

from clientarea.accounts.models import User
from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import OutOfReach, may
from clientarea.audit.services import audit_record

from . import names
from .drivers import registrar_driver
from .models import Domain


class DomainActionError(Exception):
    """An action the domain's state does not allow; the message is shown to the user."""


def _lock_manageable(domain: Domain, actor: User) -> Domain:
    """Lock the domain's row, then ask the policy whether `actor` may manage it right now:
    another account's domain, one outside the actor's scope or without Manage Domain
    Settings is "no such domain", whichever entry point called."""
    locked = Domain.objects.select_related("account").select_for_update().get(pk=domain.pk)
    if not may(actor, Perm.MANAGE_DOMAINS, locked.account, obj=locked):
        raise OutOfReach("No such domain.")
    if not locked.is_manageable:
        raise DomainActionError(
            f"{locked.unicode_name} is {locked.get_status_display().lower()}: "
            "its settings cannot be changed."
        )
    return locked


def domain_set_nameservers(
    *,
    domain: Domain,
    actor: User,
    nameservers: Sequence[str],
    request: HttpRequest | None = None,
) -> Domain:
    """Replace the nameservers (2 to 5 host names; raises ValidationError otherwise)."""
    cleaned = names.nameservers_validate(list(nameservers))
    with transaction.atomic():
        locked = _lock_manageable(domain, actor)
        before = locked.nameserver_list
        if cleaned == before:
            return locked
        registrar_driver().set_nameservers(locked, cleaned)
        locked.nameservers = cleaned
        locked.save(update_fields=["nameservers"])
        audit_record(
            action="domain.nameservers_changed",
            actor=actor,
            account=locked.account,
            target=locked,
            changes={"nameservers": [before, cleaned]},
            request=request,
        )
    return locked


def domain_set_registrar_lock(
    *, domain: Domain, actor: User, locked: bool, request: HttpRequest | None = None
) -> Domain:
    with transaction.atomic():
        row = _lock_manageable(domain, actor)
        if row.registrar_lock == locked:
            return row
        registrar_driver().set_registrar_lock(row, locked)
        row.registrar_lock = locked
        row.save(update_fields=["registrar_lock"])
        audit_record(
            action="domain.registrar_lock_changed",
            actor=actor,
            account=row.account,
            target=row,
            changes={"registrar_lock": [not locked, locked]},
            request=request,
        )
    return row


def domain_set_auto_renew(
    *, domain: Domain, actor: User, enabled: bool, request: HttpRequest | None = None
) -> Domain:
    with transaction.atomic():
        row = _lock_manageable(domain, actor)
        if row.auto_renew == enabled:
            return row
        row.auto_renew = enabled
        row.save(update_fields=["auto_renew"])
        audit_record(
            action="domain.auto_renew_changed",
            actor=actor,
            account=row.account,
            target=row,
            changes={"auto_renew": [not enabled, enabled]},
            request=request,
        )
    return row
