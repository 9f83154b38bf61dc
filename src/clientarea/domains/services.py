"""Actions on domains.

What the registry carries out (nameservers, the registrar lock, a renewal) follows the rule
of ``core.outside``: the intent is committed as a PendingChange, the registry is called
with no transaction open, and the result is recorded, with its audit event, in a second
transaction. A registry that does not answer leaves the change pending; the worker settles
it with ``domain:info`` (the reconcilers at the end of this module). Auto-renew is our own
billing setting: no registry command, one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest

from clientarea.accounts.models import User
from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import Access, OutOfReach, access_require
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
    pending_for,
    register_reconciler,
)

from . import names
from .drivers import RegistryDomainInfo, add_years, registrar_driver
from .models import Domain

NAMESERVERS = "domains.nameservers"
REGISTRAR_LOCK = "domains.registrar_lock"
RENEW = "domains.renew"
_CHANGE_LABELS = {
    NAMESERVERS: "nameserver change",
    REGISTRAR_LOCK: "registrar lock change",
    RENEW: "renewal",
}
MAX_RENEWAL_YEARS = 10  # RFC 5731: a registration period is at most 99 years; registries cap at 10


class DomainActionError(Exception):
    """An action the domain's state does not allow; the message is shown to the user."""


class DomainChangePending(DomainActionError):
    """An earlier change of the domain is still waiting for the registry (the API's 409)."""


class DomainRegistryUnavailable(DomainActionError):
    """The registry could not be reached; nothing was changed (the API's 503)."""


def change_label(change: PendingChange | None) -> str:
    """How the domain page names a change handed to the registry."""
    return _CHANGE_LABELS.get(change.operation, "change") if change is not None else ""


def _target(domain: Domain) -> str:
    return f"domains.domain:{domain.pk}"


def _domain_id(change: PendingChange) -> int:
    return int(change.target.rsplit(":", 1)[1])


def domain_pending_change(domain: Domain) -> PendingChange | None:
    return pending_for(_target(domain))


def domain_last_failed_change(domain: Domain) -> PendingChange | None:
    """The newest registry change of this domain, if it ended without being made."""
    return last_failed_change(_target(domain))


def _locked_domain(pk: int) -> Domain:
    return Domain.objects.select_related("account").select_for_update(of=("self",)).get(pk=pk)


def _lock_manageable(domain: Domain, access: Access) -> Domain:
    """Lock the domain's row, then ask the policy whether `access` (as it stands now) may
    manage it: another account's domain, one outside the scope, or an access that has
    ended is "no such domain" (``OutOfReach``); one it reaches without Manage Domain
    Settings is ``NotPermitted``, whichever entry point called."""
    row = (
        Domain.objects.select_related("account")
        .select_for_update(of=("self",))
        .filter(pk=domain.pk)
        .first()
    )
    if row is None:
        raise OutOfReach("No such domain.")
    access_require(access, Perm.MANAGE_DOMAINS, row, noun="domain")
    if not row.is_manageable:
        raise DomainActionError(
            f"{row.unicode_name} is {row.get_status_display().lower()}: "
            "its settings cannot be changed."
        )
    return row


def _refuse_while_pending(row: Domain) -> None:
    """Called under the row lock, before deciding there is nothing to do: while a change
    awaits the registry, our record is not what the registry will hold, so "already so"
    would be a guess (e.g. Lock pressed again while an unlock is pending)."""
    if pending_for(_target(row)) is not None:
        raise DomainChangePending(
            f"An earlier change of {row.unicode_name} is still waiting for the registry: "
            "try again in a few minutes."
        )


def _begin(
    row: Domain, actor: User, operation: str, params: dict[str, object], request: HttpRequest | None
) -> PendingChange:
    try:
        return pending_change_begin(
            operation=operation,
            target=_target(row),
            account=row.account,
            actor=actor,
            params={**params, "ip_address": client_ip(request) or ""},
        )
    except OutsideChangeInFlight as exc:
        raise DomainChangePending(
            f"An earlier change of {row.unicode_name} is still waiting for the registry: "
            "try again in a few minutes."
        ) from exc


def _call_registry(change: PendingChange, call: Callable[[], object]) -> ChangeOutcome | None:
    """Make the registry call of `change`. Returns a pending outcome if no answer came,
    None if it was made; raises DomainActionError (recorded as not made) on a refusal."""
    try:
        outside_call(call, retry_uncertain=True)
    except OutsideRefused as exc:
        pending_change_fail(change, str(exc))
        raise DomainActionError(str(exc)) from None
    except OutsideUnavailable as exc:
        pending_change_fail(change, str(exc))
        raise DomainRegistryUnavailable(str(exc)) from None
    except OutsideUncertain:
        return ChangeOutcome(pending=True)
    finally:
        # Whatever the answer, the registry's cached view may be stale from now on.
        cache.delete(_registry_key_for(_domain_id(change)))
    return None


def domain_set_nameservers(
    *,
    domain: Domain,
    access: Access,
    nameservers: Sequence[str],
    request: HttpRequest | None = None,
) -> ChangeOutcome:
    """Replace the nameservers (2 to 5 host names; raises ValidationError otherwise), for
    the person of `access` (Manage Domain Settings, the domain in reach)."""
    cleaned = names.nameservers_validate(list(nameservers))
    actor = access.user
    with transaction.atomic():
        row = _lock_manageable(domain, access)
        _refuse_while_pending(row)
        before = row.nameserver_list
        if cleaned == before:
            return ChangeOutcome(pending=False)
        change = _begin(row, actor, NAMESERVERS, {"before": before, "after": cleaned}, request)
    # Asking again for the same list changes nothing: safe to retry when unanswered.
    pending = _call_registry(change, lambda: registrar_driver().set_nameservers(row, cleaned))
    if pending is not None:
        return pending
    _record(change)
    return ChangeOutcome(pending=False)


def domain_set_registrar_lock(
    *, domain: Domain, access: Access, locked: bool, request: HttpRequest | None = None
) -> ChangeOutcome:
    """Lock or unlock the domain at the registry, for the person of `access`."""
    actor = access.user
    with transaction.atomic():
        row = _lock_manageable(domain, access)
        _refuse_while_pending(row)
        if row.registrar_lock == locked:
            return ChangeOutcome(pending=False)
        change = _begin(
            row, actor, REGISTRAR_LOCK, {"before": not locked, "after": locked}, request
        )
    pending = _call_registry(change, lambda: registrar_driver().set_registrar_lock(row, locked))
    if pending is not None:
        return pending
    _record(change)
    return ChangeOutcome(pending=False)


def domain_set_auto_renew(
    *, domain: Domain, access: Access, enabled: bool, request: HttpRequest | None = None
) -> Domain:
    """Auto-renew is our billing setting (renewal invoices), not a registry command; for
    the person of `access`."""
    actor = access.user
    with transaction.atomic():
        row = _lock_manageable(domain, access)
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


def _require_staff(staff: User) -> None:
    """Registry actions of the back office: staff allowed to change domains, whoever calls."""
    if not (staff.is_active and staff.is_staff and staff.has_perm("domains.change_domain")):
        raise DomainActionError("Only staff allowed to change domains can do this.")


def domain_renew(
    *, domain: Domain, staff: User, years: int, request: HttpRequest | None = None
) -> ChangeOutcome:
    """Staff: renew at the registry for `years` (the billing side comes with renewal
    invoices). The registry is told the current expiry, so a retry never renews twice."""
    _require_staff(staff)
    if not 1 <= years <= MAX_RENEWAL_YEARS:
        raise DomainActionError(f"A renewal is for 1 to {MAX_RENEWAL_YEARS} years.")
    with transaction.atomic():
        row = _locked_domain(domain.pk)
        if row.status not in (Domain.Status.ACTIVE, Domain.Status.EXPIRED):
            raise DomainActionError(
                f"{row.unicode_name} is {row.get_status_display().lower()}: it cannot be renewed."
            )
        if row.expiry_date is None:
            raise DomainActionError(
                f"{row.unicode_name} has no expiry date: sync it from the registry first."
            )
        current = row.expiry_date
        params = {"years": years, "before": current.isoformat()}
        params["after"] = add_years(current, years).isoformat()
        change = _begin(row, staff, RENEW, params, request)
    pending = _call_registry(change, lambda: registrar_driver().renew(row, years, current))
    if pending is not None:
        return pending
    _record(change)
    return ChangeOutcome(pending=False)


def _record(change: PendingChange) -> None:
    """The registry made `change`: write it to our records and audit it, exactly once."""
    with transaction.atomic():
        row = _locked_domain(_domain_id(change))
        if not pending_change_finish(change, done=True):
            return  # already recorded (by the worker, or by the request)
        before, after = change.params["before"], change.params["after"]
        ip_address = str(change.params.get("ip_address") or "") or None
        if change.operation == NAMESERVERS:
            row.nameservers = after
            row.save(update_fields=["nameservers"])
            action, changes = "domain.nameservers_changed", {"nameservers": [before, after]}
        elif change.operation == REGISTRAR_LOCK:
            row.registrar_lock = bool(after)
            row.save(update_fields=["registrar_lock"])
            action, changes = "domain.registrar_lock_changed", {"registrar_lock": [before, after]}
        else:
            row.expiry_date = date.fromisoformat(str(after))
            if row.status == Domain.Status.EXPIRED:
                row.status = Domain.Status.ACTIVE
            row.save(update_fields=["expiry_date", "status"])
            action = "domain.renewed"
            changes = {"expiry_date": [before, after], "years": change.params["years"]}
        cache.delete(_registry_key(row))
        audit_record(
            action=action,
            actor=change.actor,
            account=row.account,
            target=row,
            changes=changes,
            ip_address=ip_address,
            # A renewal staff made; one a customer ordered and paid for is theirs.
            is_staff_action=change.operation == RENEW and "renewal" not in change.params,
        )


def _settle(change: PendingChange) -> Reconciled:
    """A registry change left pending: ``domain:info`` says whether the registry holds it."""
    domain = Domain.objects.select_related("account").filter(pk=_domain_id(change)).first()
    if domain is None:
        pending_change_fail(change, "The domain no longer exists here.")
        return Reconciled.FAILED
    try:
        held = outside_call(lambda: registrar_driver().domain_info(domain), retry_uncertain=True)
    except OutsideRefused as exc:
        pending_change_fail(change, str(exc))
        return Reconciled.FAILED
    except (OutsideUnavailable, OutsideUncertain):
        return Reconciled.PENDING
    after = change.params["after"]
    if change.operation == NAMESERVERS:
        made = sorted(held.nameservers) == sorted(str(ns) for ns in after)
    elif change.operation == REGISTRAR_LOCK:
        made = held.registrar_lock == bool(after)
    else:
        made = held.expiry_date is not None and held.expiry_date >= date.fromisoformat(str(after))
    if made:
        _record(change)
        return Reconciled.DONE
    pending_change_fail(change, "The registry did not make the change; nothing was changed.")
    return Reconciled.FAILED


# --- the registry's own view ---------------------------------------------------------------


def _registry_key_for(domain_id: int) -> str:
    return f"domains:registry:{domain_id}"


def _registry_key(domain: Domain) -> str:
    return _registry_key_for(domain.pk)


def domain_registry_view(domain: Domain) -> RegistryDomainInfo | None:
    """What the registry holds (statuses, nameservers, expiry), reused for a minute; None
    if the registry did not answer. The caller has checked the viewer may see the domain."""
    if domain.status not in (Domain.Status.ACTIVE, Domain.Status.EXPIRED):
        return None
    cached = cache.get(_registry_key(domain))
    if isinstance(cached, RegistryDomainInfo):
        return cached
    if in_transaction():
        return None  # never an outside call inside a transaction, even a read
    try:
        held = outside_call(lambda: registrar_driver().domain_info(domain), retry_uncertain=True)
    except OutsideError:
        return None
    cache.set(_registry_key(domain), held, settings.PANEL_SUMMARY_CACHE_SECONDS)
    return held


def domain_registry_sync(
    *, domain: Domain, staff: User, request: HttpRequest | None = None
) -> list[str]:
    """Staff: make our record match the registry's (nameservers, lock, expiry), audited.
    Returns the names of the fields that changed."""
    _require_staff(staff)
    try:
        held = outside_call(lambda: registrar_driver().domain_info(domain), retry_uncertain=True)
    except OutsideError as exc:
        raise DomainActionError(str(exc)) from None
    with transaction.atomic():
        row = _locked_domain(domain.pk)
        if pending_for(_target(row)) is not None:
            raise DomainActionError("A change is pending at the registry: sync after it settles.")
        changes: dict[str, list[object]] = {}
        if sorted(row.nameserver_list) != sorted(held.nameservers):
            changes["nameservers"] = [row.nameserver_list, list(held.nameservers)]
            row.nameservers = list(held.nameservers)
        if row.registrar_lock != held.registrar_lock:
            changes["registrar_lock"] = [row.registrar_lock, held.registrar_lock]
            row.registrar_lock = held.registrar_lock
        if held.expiry_date is not None and row.expiry_date != held.expiry_date:
            changes["expiry_date"] = [str(row.expiry_date or ""), held.expiry_date.isoformat()]
            row.expiry_date = held.expiry_date
        if changes:
            row.save(update_fields=["nameservers", "registrar_lock", "expiry_date"])
            audit_record(
                action="domain.synced_from_registry",
                actor=staff,
                account=row.account,
                target=row,
                changes=changes,
                request=request,
                is_staff_action=True,
            )
        cache.delete(_registry_key(row))
    return sorted(changes)


def register_reconcilers() -> None:
    for operation in (NAMESERVERS, REGISTRAR_LOCK, RENEW):
        register_reconciler(operation, _settle)
