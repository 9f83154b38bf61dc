"""The back office: staff type IDN names in Unicode; they are stored in ASCII."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account
from clientarea.accounts.tests.factories import UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.domains.models import Domain

from .factories import DomainFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def data(account: Account, **extra: Any) -> dict[str, Any]:
    return {
        "account": account.pk,
        "name": "Café-Example.IE",
        "status": "active",
        "registration_date": "2025-01-01",
        "expiry_date": "2027-01-01",
        "auto_renew": "on",
        "registrar_lock": "on",
        "nameservers_text": "ns1.example.com\nNS2.example.com.\n",
        **extra,
    }


def test_staff_add_an_idn_domain(staff_client: Client, account: Account) -> None:
    response = staff_client.post(reverse("admin:domains_domain_add"), data(account))
    assert response.status_code == 302, response.content.decode()[:3000]
    domain = Domain.objects.get()
    assert domain.name == "xn--caf-example-dbb.ie"
    assert domain.nameservers == ["ns1.example.com", "ns2.example.com"]
    assert AuditEvent.objects.get(action="domain.created").is_staff_action
    listing = staff_client.get(reverse("admin:domains_domain_changelist") + "?q=café-example.ie")
    assert "café-example.ie" in listing.content.decode()


def test_staff_get_clear_errors(staff_client: Client, account: Account) -> None:
    DomainFactory(name="xn--caf-example-dbb.ie")
    response = staff_client.post(
        reverse("admin:domains_domain_add"), data(account, nameservers_text="10.0.0.1\nns.x.ie")
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "café-example.ie already exists." in body
    assert "Nameserver 1: 10.0.0.1 is an IP address" in body
    assert Domain.objects.count() == 1


def test_staff_renew_and_sync_from_the_registry_from_the_change_list(
    staff_client: Client, account: Account, registrar: Any
) -> None:
    from datetime import date

    domain = DomainFactory(account=account, expiry_date=date(2027, 5, 20))
    url = reverse("admin:domains_domain_changelist")
    response = staff_client.post(
        url,
        {"action": "renew_at_registry", "_selected_action": [domain.pk], "years": "2"},
        follow=True,
    )
    assert "renewed for 2 year(s), now expires 20 May 2029" in response.content.decode()
    assert Domain.objects.get(pk=domain.pk).expiry_date == date(2029, 5, 20)
    response = staff_client.post(
        url, {"action": "sync_from_registry", "_selected_action": [domain.pk]}, follow=True
    )
    assert "already matched the registry" in response.content.decode()
    registrar.refuse = "The domain is under a registry lock (serverRenewProhibited)."
    response = staff_client.post(
        url,
        {"action": "renew_at_registry", "_selected_action": [domain.pk], "years": "1"},
        follow=True,
    )
    assert "serverRenewProhibited" in response.content.decode()
    assert Domain.objects.get(pk=domain.pk).expiry_date == date(2029, 5, 20)
