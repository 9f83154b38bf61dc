"""Found by reviewing issue 13 from the attacker's side (domains): each test failed before
its fix."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account
from clientarea.accounts.tests.factories import UserFactory, access_of
from clientarea.core.models import PendingChange
from clientarea.core.outside import pending_changes_reconcile_due
from clientarea.domains import services
from clientarea.domains.epp import EppRegistrarDriver
from clientarea.domains.models import Domain

from .conftest import RecordingRegistrar
from .epp_server import EppTestServer
from .factories import DomainFactory
from .test_epp import (  # noqa: F401  (fixtures)
    epp_certs,
    epp_driver_setting,
    epp_settings,
    registered,
    registry,
)

OLD = ["ns1.host.example", "ns2.host.example"]
NEW = ["ns1.newdns.example", "ns2.newdns.example"]


# --- F2a: one EPP change runs far longer than OUTSIDE_CALL_BUDGET_SECONDS ------------------


@pytest.mark.django_db
def test_an_epp_change_stays_within_its_budget(
    epp_driver_setting: Any,  # noqa: F811  (the fixtures imported above)
    registry: EppTestServer,  # noqa: F811
    account: Any,
    monkeypatch: Any,
) -> None:
    registry.max_nameservers = 5
    slow = EppTestServer._handle

    def answer_slowly(self: EppTestServer, frame: bytes, session: Any) -> Any:
        time.sleep(0.9)  # every answer just inside the 1 s per-request timeout
        return slow(self, frame, session)

    monkeypatch.setattr(EppTestServer, "_handle", answer_slowly)
    domain = registered(registry, account)
    wanted = [f"ns{i}.brand-new-dns.org" for i in range(1, 6)]  # 5 hosts to create
    started = time.monotonic()
    services.domain_set_nameservers(
        domain=domain, access=access_of(account.owner, account), nameservers=wanted
    )
    took = time.monotonic() - started
    budget = epp_driver_setting.OUTSIDE_CALL_BUDGET_SECONDS
    assert took <= budget + epp_driver_setting.OUTSIDE_CALL_TIMEOUT_SECONDS, (
        f"one nameserver change took {took:.1f} s with a {budget} s budget "
        f"({took / budget:.1f}x); production grace is only 4x the budget (120 s vs 30 s)"
    )


# --- F2b: the worker settles a change while its request is still talking to the registry ---


@pytest.mark.django_db
def test_a_request_that_outlives_the_grace_period_does_not_report_a_false_result(
    account: Account, registrar: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    domain = DomainFactory(account=account)
    apply = RecordingRegistrar.set_nameservers

    def slow_registry(self: Any, d: Any, ns: list[str]) -> None:
        # The registry is slow: the grace period passes before it applies the change, and
        # the worker runs meanwhile (as it would, in its own process).
        later = timezone.now() + timedelta(seconds=settings.PENDING_CHANGE_GRACE_SECONDS + 1)
        pending_changes_reconcile_due(now=later)
        apply(self, d, ns)

    monkeypatch.setattr(RecordingRegistrar, "set_nameservers", slow_registry)
    outcome = services.domain_set_nameservers(
        domain=domain, access=access_of(account.owner, account), nameservers=NEW
    )
    held = RecordingRegistrar.held[str(domain.name)].nameservers
    # The registry's "yes" wins over the worker's early "not made": all three agree.
    assert not outcome.pending and list(held) == NEW
    assert Domain.objects.get(pk=domain.pk).nameservers == NEW
    assert services.domain_last_failed_change(domain) is None


# --- F3: back-office registry actions run by staff with view permission only --------------


@pytest.mark.django_db
def test_view_only_staff_cannot_renew_at_the_registry(account: Account, registrar: Any) -> None:
    domain = DomainFactory(account=account)
    user = UserFactory(is_staff=True, is_superuser=False)
    user.user_permissions.set(Permission.objects.filter(codename="view_domain"))
    client = Client()
    client.force_login(user)
    changelist = reverse("admin:domains_domain_changelist")
    assert client.get(changelist).status_code == 200
    client.post(
        changelist,
        {"action": "renew_at_registry", "_selected_action": [domain.pk], "years": "10", "index": 0},
    )
    assert Domain.objects.get(pk=domain.pk).expiry_date == domain.expiry_date, (
        f"a view-only staff user renewed {domain.name} for 10 years at the registry: "
        f"{RecordingRegistrar.calls}"
    )


@pytest.mark.django_db
def test_an_epp_change_with_one_lost_read_stays_within_4x_budget(
    epp_driver_setting: Any,  # noqa: F811  (the fixtures imported above)
    registry: EppTestServer,  # noqa: F811
    account: Any,
    monkeypatch: Any,
) -> None:
    registry.max_nameservers = 5
    slow = EppTestServer._handle

    def answer_slowly(self: EppTestServer, frame: bytes, session: Any) -> Any:
        time.sleep(0.9)
        return slow(self, frame, session)

    monkeypatch.setattr(EppTestServer, "_handle", answer_slowly)
    domain = registered(registry, account)
    registry.fail("domain:info", "no_answer")  # the first read goes unanswered: retried
    wanted = [f"ns{i}.brand-new-dns.org" for i in range(1, 6)]
    started = time.monotonic()
    services.domain_set_nameservers(
        domain=domain, access=access_of(account.owner, account), nameservers=wanted
    )
    took = time.monotonic() - started
    budget = epp_driver_setting.OUTSIDE_CALL_BUDGET_SECONDS
    assert took <= 4 * budget, f"{took:.1f} s > 4 x budget (the production grace ratio)"


class MyRegistryDriver(EppRegistrarDriver):
    """A provider's EPP driver with its registry's extensions."""


def test_check_deploy_checks_a_subclass_of_the_epp_driver(settings: Any) -> None:
    from clientarea.domains.checks import epp_settings_check

    settings.DOMAINS_REGISTRAR_DRIVER = (
        "clientarea.domains.tests.test_outside_review.MyRegistryDriver"
    )
    settings.EPP_VERIFY_TLS = False
    settings.EPP_PASSWORD = ""
    settings.EPP_CERT_FILE = ""
    settings.DEMO_MODE = False
    ids = [m.id for m in epp_settings_check()]
    assert "domains.E004" in ids, f"no EPP check at all for a subclass: {ids}"


# --- F-noop: asking for the value on record while a change is pending says "done" ----------


@pytest.mark.django_db
def test_locking_again_while_an_unlock_is_pending_is_not_reported_as_locked(
    account: Account, registrar: Any, fresh_client: Any = None
) -> None:
    domain = DomainFactory(account=account, registrar_lock=True)
    registrar.uncertain = 99  # the unlock reaches the registry, its answers are lost
    outcome = services.domain_set_registrar_lock(
        domain=domain, access=access_of(account.owner, account), locked=False
    )
    assert outcome.pending
    # From a second tab (or a page loaded before): Lock. Our record still says locked,
    # but that is not what the registry will hold: refused, never "Registrar lock is on".
    with pytest.raises(services.DomainActionError, match="still waiting for the registry"):
        services.domain_set_registrar_lock(
            domain=domain, access=access_of(account.owner, account), locked=True
        )
    with pytest.raises(services.DomainActionError, match="still waiting for the registry"):
        services.domain_set_nameservers(
            domain=domain,
            access=access_of(account.owner, account),
            nameservers=domain.nameserver_list,
        )
    registrar.uncertain = 0
    PendingChange.objects.update(next_check_at=timezone.now() - timedelta(seconds=1))
    pending_changes_reconcile_due()
    assert Domain.objects.get(pk=domain.pk).registrar_lock is False
    assert RecordingRegistrar.held[str(domain.name)].registrar_lock is False
