"""Registry changes follow "record the intent, call outside, record the result": never
inside a transaction, never shown as made before the registry says so, and settled by the
worker with domain:info after a crash or an unanswered command."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.policy import OutOfReach
from clientarea.accounts.tests.factories import UserFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.core.models import PendingChange
from clientarea.core.outside import pending_changes_reconcile_due
from clientarea.domains import services
from clientarea.domains.models import Domain

from .factories import DomainFactory

pytestmark = pytest.mark.django_db
OLD = ["ns1.host.example", "ns2.host.example"]
NEW = ["ns1.newdns.example", "ns2.newdns.example"]


def _due_now() -> None:
    PendingChange.objects.update(next_check_at=timezone.now() - timedelta(seconds=1))


def _fresh(domain: Domain) -> Domain:
    return Domain.objects.get(pk=domain.pk)


def test_an_unanswered_nameserver_change_stays_pending_until_the_registry_shows_it(
    account: Account, registrar: Any
) -> None:
    domain = DomainFactory(account=account)
    registrar.uncertain = 99  # applied at the registry, never answered
    outcome = services.domain_set_nameservers(
        domain=domain, access=access_of(account.owner, account), nameservers=NEW
    )
    assert outcome.pending
    assert _fresh(domain).nameservers == OLD  # not claimed as made
    assert not AuditEvent.objects.exists()
    assert services.domain_pending_change(domain) is not None
    # A second change waits for this one.
    with pytest.raises(services.DomainActionError, match="still waiting for the registry"):
        services.domain_set_registrar_lock(
            domain=domain, access=access_of(account.owner, account), locked=False
        )
    registrar.uncertain = 0
    _due_now()
    assert pending_changes_reconcile_due()["done"] == 1
    assert _fresh(domain).nameservers == NEW
    event = AuditEvent.objects.get(action="domain.nameservers_changed")
    assert event.actor == account.owner and event.changes["nameservers"] == [OLD, NEW]


def test_a_command_that_never_reached_the_registry_is_recorded_as_not_made(
    account: Account, registrar: Any
) -> None:
    domain = DomainFactory(account=account, registrar_lock=True)
    registrar.lost = True
    outcome = services.domain_set_registrar_lock(
        domain=domain, access=access_of(account.owner, account), locked=False
    )
    assert outcome.pending
    registrar.lost = False
    _due_now()
    assert pending_changes_reconcile_due()["failed"] == 1
    assert _fresh(domain).registrar_lock is True
    failed = services.domain_last_failed_change(domain)
    assert failed is not None and "did not make the change" in failed.message
    assert not AuditEvent.objects.exists()


def test_a_crash_after_the_registry_call_is_settled_by_the_worker(
    account: Account, registrar: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    domain = DomainFactory(account=account)

    def crash(change: Any) -> None:
        raise SystemExit("the process died after the registry answered")

    monkeypatch.setattr(services, "_record", crash)
    with pytest.raises(SystemExit):
        services.domain_set_nameservers(
            domain=domain, access=access_of(account.owner, account), nameservers=NEW
        )
    monkeypatch.undo()
    assert registrar.calls == [(domain.name, "nameservers", NEW)]
    assert _fresh(domain).nameservers == OLD
    _due_now()
    assert pending_changes_reconcile_due()["done"] == 1
    assert _fresh(domain).nameservers == NEW
    _due_now()
    assert pending_changes_reconcile_due() == {"done": 0, "failed": 0, "pending": 0}
    assert AuditEvent.objects.filter(action="domain.nameservers_changed").count() == 1


def test_an_unreachable_registry_changes_nothing_and_says_so(
    account: Account, registrar: Any
) -> None:
    domain = DomainFactory(account=account)
    registrar.unavailable = True
    with pytest.raises(services.DomainActionError, match="nothing was changed"):
        services.domain_set_nameservers(
            domain=domain, access=access_of(account.owner, account), nameservers=NEW
        )
    assert PendingChange.objects.get().state == "failed"
    assert _fresh(domain).nameservers == OLD


def test_a_revoked_or_foreign_actor_never_reaches_the_registry(
    account: Account, other_account: Account, member_factory: Callable[..., Membership],
    registrar: Any,
) -> None:  # fmt: skip
    domain = DomainFactory(account=account)
    member = member_factory("managedomains")
    access = access_of(member.user, account)  # built while they still had access
    member.delete()
    with pytest.raises(OutOfReach):
        services.domain_set_nameservers(domain=domain, access=access, nameservers=NEW)
    with pytest.raises(OutOfReach):
        services.domain_set_nameservers(
            domain=domain, access=access_of(other_account.owner, other_account), nameservers=NEW
        )
    assert registrar.calls == [] and not PendingChange.objects.exists()


def test_staff_renewal_sends_the_current_expiry_and_records_the_new_one(
    account: Account, registrar: Any
) -> None:
    staff = UserFactory(is_staff=True, is_superuser=True)
    domain = DomainFactory(account=account, expiry_date=date(2027, 3, 1))
    assert not services.domain_renew(domain=domain, staff=staff, years=2).pending
    assert _fresh(domain).expiry_date == date(2029, 3, 1)
    event = AuditEvent.objects.get(action="domain.renewed")
    assert event.is_staff_action and event.changes["expiry_date"] == ["2027-03-01", "2029-03-01"]
    with pytest.raises(services.DomainActionError, match="1 to 10 years"):
        services.domain_renew(domain=domain, staff=staff, years=0)


def test_an_unanswered_renewal_is_settled_from_the_registry_expiry(
    account: Account, registrar: Any
) -> None:
    staff = UserFactory(is_staff=True, is_superuser=True)
    domain = DomainFactory(account=account, expiry_date=date(2027, 3, 1))
    registrar.uncertain = 99
    assert services.domain_renew(domain=domain, staff=staff, years=1).pending
    assert _fresh(domain).expiry_date == date(2027, 3, 1)
    registrar.uncertain = 0
    _due_now()
    assert pending_changes_reconcile_due()["done"] == 1
    assert _fresh(domain).expiry_date == date(2028, 3, 1)
    # Renewed once at the registry: the retries carried the same current expiry.
    assert [c for c in registrar.calls if c[1] == "renew"] == [(domain.name, "renew", 1)]


def test_the_registry_view_is_shown_and_staff_can_sync_from_it(
    account: Account, registrar: Any
) -> None:
    staff = UserFactory(is_staff=True, is_superuser=True)
    domain = DomainFactory(account=account, expiry_date=date(2027, 3, 1), registrar_lock=True)
    held = services.domain_registry_view(domain)
    assert held is not None and held.registrar_lock and list(held.nameservers) == OLD
    # The registry changed behind our back (e.g. at the registry's own panel).
    from dataclasses import replace

    registrar.held[domain.name] = replace(
        held, nameservers=tuple(NEW), expiry_date=date(2028, 3, 1)
    )
    changed = services.domain_registry_sync(domain=domain, staff=staff)
    assert changed == ["expiry_date", "nameservers"]
    fresh = _fresh(domain)
    assert fresh.nameservers == NEW and fresh.expiry_date == date(2028, 3, 1)
    assert AuditEvent.objects.get(action="domain.synced_from_registry").is_staff_action
