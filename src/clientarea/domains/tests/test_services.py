"""Domain settings go through the registrar driver, are audited, and change nothing on error."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from clientarea.accounts.models import Account
from clientarea.accounts.tests.factories import access_of
from clientarea.audit.models import AuditEvent
from clientarea.domains import services
from clientarea.domains.drivers import LocalRegistrarDriver, registrar_driver
from clientarea.domains.models import Domain

from .factories import DomainFactory

pytestmark = pytest.mark.django_db
NEW = ["ns1.newdns.example", "ns2.newdns.example", "ns3.newdns.example"]


def test_nameservers_are_normalised_sent_to_the_registrar_and_audited(
    account: Account, registrar: Any
) -> None:
    domain = DomainFactory(account=account)
    services.domain_set_nameservers(
        domain=domain,
        access=access_of(account.owner, account),
        nameservers=["NS1.newdns.example.", *NEW[1:]],
    )
    assert registrar.calls == [(domain.name, "nameservers", NEW)]
    assert Domain.objects.get(pk=domain.pk).nameservers == NEW
    event = AuditEvent.objects.get(action="domain.nameservers_changed")
    assert event.actor == account.owner and event.account == account
    assert event.changes["nameservers"] == [["ns1.host.example", "ns2.host.example"], NEW]


def test_unchanged_nameservers_are_a_no_op(account: Account, registrar: Any) -> None:
    domain = DomainFactory(account=account)
    services.domain_set_nameservers(
        domain=domain,
        access=access_of(account.owner, account),
        nameservers=["ns1.host.example", "ns2.host.example"],
    )
    assert registrar.calls == [] and not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "bad", [["ns1.example.com"], ["ns1.example.com", "192.0.2.1"], ["a.example", "A.example."]]
)
def test_invalid_nameservers_change_nothing(account: Account, registrar: Any, bad: Any) -> None:
    domain = DomainFactory(account=account)
    with pytest.raises(ValidationError):
        services.domain_set_nameservers(
            domain=domain, access=access_of(account.owner, account), nameservers=bad
        )
    assert registrar.calls == []
    assert Domain.objects.get(pk=domain.pk).nameservers == domain.nameservers


def test_a_registrar_refusal_rolls_back(account: Account, registrar: Any) -> None:
    registrar.refuse = "The domain is locked at the registry."
    domain = DomainFactory(account=account, registrar_lock=True)
    with pytest.raises(services.DomainActionError, match="locked at the registry"):
        services.domain_set_nameservers(
            domain=domain, access=access_of(account.owner, account), nameservers=NEW
        )
    with pytest.raises(services.DomainActionError):
        services.domain_set_registrar_lock(
            domain=domain, access=access_of(account.owner, account), locked=False
        )
    fresh = Domain.objects.get(pk=domain.pk)
    assert fresh.nameservers == domain.nameservers and fresh.registrar_lock is True
    assert not AuditEvent.objects.exists()


def test_the_lock_goes_through_the_registrar_and_auto_renew_does_not(
    account: Account, registrar: Any
) -> None:
    domain = DomainFactory(account=account, registrar_lock=True, auto_renew=True)
    services.domain_set_registrar_lock(
        domain=domain, access=access_of(account.owner, account), locked=False
    )
    services.domain_set_auto_renew(
        domain=domain, access=access_of(account.owner, account), enabled=False
    )
    services.domain_set_auto_renew(
        domain=domain, access=access_of(account.owner, account), enabled=False
    )  # repeat
    fresh = Domain.objects.get(pk=domain.pk)
    assert (fresh.registrar_lock, fresh.auto_renew) == (False, False)
    # Auto-renew is our billing setting: the registry is never asked.
    assert registrar.calls == [(domain.name, "registrar_lock", False)]
    actions = sorted(AuditEvent.objects.values_list("action", flat=True))
    assert actions == ["domain.auto_renew_changed", "domain.registrar_lock_changed"]


@pytest.mark.parametrize("status", [s for s in Domain.Status if s != Domain.Status.ACTIVE])
def test_only_active_domains_can_be_changed(account: Account, registrar: Any, status: str) -> None:
    domain = DomainFactory(account=account, status=status)
    with pytest.raises(services.DomainActionError):
        services.domain_set_nameservers(
            domain=domain, access=access_of(account.owner, account), nameservers=NEW
        )
    with pytest.raises(services.DomainActionError):
        services.domain_set_auto_renew(
            domain=domain, access=access_of(account.owner, account), enabled=False
        )
    assert registrar.calls == []


def test_the_local_driver_records_changes(account: Account) -> None:
    driver = registrar_driver()
    assert isinstance(driver, LocalRegistrarDriver)
    domain = DomainFactory(account=account)
    services.domain_set_nameservers(
        domain=domain, access=access_of(account.owner, account), nameservers=NEW
    )
    assert driver.changes[-1].domain == domain.name
    assert driver.changes[-1].value == NEW
