"""The domain setters (nameservers, registrar lock, auto-renew) check the policy
themselves, from the attacker's side: an access without Manage Domain Settings, with
another domain in scope, on another account's domain, or that has ended since it was
built is refused before the registry is called or anything is recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.policy import Access, NotPermitted, OutOfReach
from clientarea.accounts.services import membership_revoke
from clientarea.accounts.tests.factories import access_of
from clientarea.audit.models import AuditEvent
from clientarea.core.models import PendingChange
from clientarea.domains import services
from clientarea.domains.models import Domain

from .factories import DomainFactory

pytestmark = pytest.mark.django_db
NEW = ["ns1.newdns.example", "ns2.newdns.example"]

Action = Callable[[Domain, Access], object]

ACTIONS: dict[str, Action] = {
    "nameservers": lambda d, a: services.domain_set_nameservers(
        domain=d, access=a, nameservers=NEW
    ),
    "lock": lambda d, a: services.domain_set_registrar_lock(domain=d, access=a, locked=True),
    "auto_renew": lambda d, a: services.domain_set_auto_renew(domain=d, access=a, enabled=False),
}


def _domain(account: Account, **fields: Any) -> Domain:
    fields.setdefault("registrar_lock", False)
    fields.setdefault("auto_renew", True)
    return DomainFactory(account=account, **fields)


def _nothing_happened(domain: Domain, registrar: Any) -> None:
    fresh = Domain.objects.get(pk=domain.pk)
    assert fresh.nameservers == domain.nameservers
    assert (fresh.registrar_lock, fresh.auto_renew) == (False, True)
    assert registrar.calls == []
    assert not PendingChange.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="domain.").exists()


@pytest.mark.parametrize("action", ACTIONS)
def test_a_sub_account_without_the_permission_is_refused_with_a_403(
    action: str, account: Account, member_factory: Callable[..., Membership], registrar: Any
) -> None:
    domain = _domain(account)
    viewer = member_factory("domains", "products", "invoices")
    with pytest.raises(NotPermitted, match=r"Manage Domain Settings \(managedomains\)"):
        ACTIONS[action](domain, access_of(viewer.user, account))
    _nothing_happened(domain, registrar)


@pytest.mark.parametrize("action", ACTIONS)
def test_the_permission_on_another_domain_of_the_scope_is_not_found(
    action: str, account: Account, member_factory: Callable[..., Membership], registrar: Any
) -> None:
    theirs = _domain(account)
    target = _domain(account)
    scoped = member_factory("managedomains", scope={"service": [], "domain": [theirs.pk]})
    with pytest.raises(OutOfReach, match="No such domain"):
        ACTIONS[action](target, access_of(scoped.user, account))
    _nothing_happened(target, registrar)


@pytest.mark.parametrize("action", ACTIONS)
def test_another_accounts_domain_is_not_found(
    action: str, account: Account, other_account: Account, registrar: Any
) -> None:
    foreign = _domain(other_account)
    with pytest.raises(OutOfReach, match="No such domain"):
        ACTIONS[action](foreign, access_of(account.owner, account))
    _nothing_happened(foreign, registrar)


@pytest.mark.parametrize("action", ACTIONS)
def test_an_access_revoked_after_it_was_built_is_not_found(
    action: str, account: Account, member_factory: Callable[..., Membership], registrar: Any
) -> None:
    domain = _domain(account)
    member = member_factory("managedomains")
    access = access_of(member.user, account)
    membership_revoke(membership=member, actor=account.owner)
    with pytest.raises(OutOfReach, match="No such domain"):
        ACTIONS[action](domain, access)
    _nothing_happened(domain, registrar)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_permission_removed_after_the_access_was_built_is_refused(
    action: str, account: Account, member_factory: Callable[..., Membership], registrar: Any
) -> None:
    domain = _domain(account)
    member = member_factory("managedomains")
    access = access_of(member.user, account)
    Membership.objects.filter(pk=member.pk).update(permissions=["domains"])
    with pytest.raises(NotPermitted):
        ACTIONS[action](domain, access)
    _nothing_happened(domain, registrar)


def test_an_owner_whose_ownership_moved_away_is_refused(
    account: Account, other_account: Account, registrar: Any
) -> None:
    domain = _domain(account)
    access = access_of(account.owner, account)
    Account.objects.filter(pk=account.pk).update(owner=other_account.owner)
    with pytest.raises(OutOfReach):
        services.domain_set_auto_renew(domain=domain, access=access, enabled=False)
    _nothing_happened(domain, registrar)


def test_a_permitted_scoped_person_still_acts(
    account: Account, member_factory: Callable[..., Membership], registrar: Any
) -> None:
    domain = _domain(account)
    scoped = member_factory("managedomains", scope={"service": [], "domain": [domain.pk]})
    access = access_of(scoped.user, account)
    for action in ACTIONS.values():
        action(domain, access)
    fresh = Domain.objects.get(pk=domain.pk)
    assert (fresh.nameservers, fresh.registrar_lock, fresh.auto_renew) == (NEW, True, False)
    assert AuditEvent.objects.filter(actor=scoped.user, action__startswith="domain.").count() == 3
