"""Domain pages from the attacker's side, nameserver form messages, toggles, queries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import AccountFactory
from clientarea.audit.models import AuditEvent
from clientarea.domains import names
from clientarea.domains.models import Domain

from .factories import DomainFactory

pytestmark = pytest.mark.django_db
NS = {"ns1": "ns1.newdns.example", "ns2": "ns2.newdns.example"}


def urls(domain: Domain) -> dict[str, str]:
    return {
        "list": reverse("domains:list"),
        "detail": reverse("domains:detail", args=[domain.pk]),
        "nameservers": reverse("domains:nameservers", args=[domain.pk]),
        "lock": reverse("domains:registrar_lock", args=[domain.pk]),
        "renew": reverse("domains:auto_renew", args=[domain.pk]),
    }


@pytest.mark.parametrize("codes", [(), ("products", "manageproducts", "tickets", "invoices")])
def test_without_domains_every_page_and_action_is_refused(
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
    registrar: Any,
    codes: Any,
) -> None:
    domain = DomainFactory(account=account)
    client = login_client(member_factory(*codes).user, account)
    u = urls(domain)
    for url in (u["list"], u["detail"], u["nameservers"]):
        assert client.get(url).status_code == 403, url
    assert client.post(u["nameservers"], NS).status_code == 403
    for url in (u["lock"], u["renew"]):
        assert client.post(url, {"enabled": "off"}).status_code == 403, url
    assert registrar.calls == []


def test_domains_lists_and_views_but_cannot_change(
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
    registrar: Any,
) -> None:
    domain = DomainFactory(account=account, name="xn--caf-example-dbb.ie")
    client = login_client(member_factory("domains").user, account)
    u = urls(domain)
    listing = client.get(u["list"]).content.decode()
    assert "café-example.ie" in listing
    detail = client.get(u["detail"]).content.decode()
    assert "café-example.ie" in detail and "ns1.host.example" in detail
    assert "Change Nameservers" not in detail and "Unlock Domain" not in detail
    assert "Manage Domain Settings" in detail
    assert client.get(u["nameservers"]).status_code == 403
    assert client.post(u["nameservers"], NS).status_code == 403
    assert client.post(u["lock"], {"enabled": "off"}).status_code == 403
    assert client.post(u["renew"], {"enabled": "off"}).status_code == 403
    assert registrar.calls == []


def test_managedomains_changes_nameservers_lock_and_auto_renew(
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
    registrar: Any,
) -> None:
    member = member_factory("managedomains")
    domain = DomainFactory(account=account)
    client = login_client(member.user, account)
    u = urls(domain)
    detail = client.get(u["detail"]).content.decode()
    assert "Change Nameservers" in detail and "Unlock Domain" in detail
    response = client.post(u["nameservers"], {**NS, "ns3": "NS3.newdns.example."})
    assert response.status_code == 302 and response["Location"] == u["detail"]
    assert client.post(u["lock"], {"enabled": "off"}).status_code == 302
    assert client.post(u["renew"], {"enabled": "off"}).status_code == 302
    fresh = Domain.objects.get(pk=domain.pk)
    assert fresh.nameservers == [*NS.values(), "ns3.newdns.example"]
    assert (fresh.registrar_lock, fresh.auto_renew) == (False, False)
    assert AuditEvent.objects.filter(actor=member.user, action__startswith="domain.").count() == 3


def test_nameserver_errors_name_the_field_and_the_reason(
    account: Account, login_client: Callable[..., Client], registrar: Any
) -> None:
    domain = DomainFactory(account=account)
    client = login_client(account.owner, account)
    response = client.post(
        urls(domain)["nameservers"],
        {"ns1": "ns1.good.example", "ns2": "NS1.good.example.", "ns3": "192.0.2.53",
         "ns4": "bad_name.example", "ns5": "<script>x</script>.example"},
    )  # fmt: skip
    body = response.content.decode()
    assert response.status_code == 200
    assert "Nameserver 2: ns1.good.example is already nameserver 1" in body
    assert "Nameserver 3: 192.0.2.53 is an IP address" in body
    assert "Nameserver 4: bad_name.example is not a valid host name" in body
    assert "Nameserver 5:" in body and "<script>x</script>" not in body  # escaped
    assert registrar.calls == []
    assert Domain.objects.get(pk=domain.pk).nameservers == domain.nameservers
    too_few = client.post(urls(domain)["nameservers"], {"ns1": "ns1.good.example"})
    assert "Nameserver 2: enter a host name" in too_few.content.decode()


def test_the_nameserver_form_shows_idn_nameservers_in_unicode(
    account: Account, login_client: Callable[..., Client]
) -> None:
    domain = DomainFactory(account=account, nameservers=[names.to_ascii("ns1.café.ie"), "ns2.x.ie"])
    body = login_client(account.owner, account).get(urls(domain)["nameservers"]).content.decode()
    assert 'value="ns1.café.ie"' in body


def test_bad_toggle_values_change_nothing(
    account: Account, login_client: Callable[..., Client], registrar: Any
) -> None:
    domain = DomainFactory(account=account)
    client = login_client(account.owner, account)
    for data in ({}, {"enabled": "maybe"}, {"enabled": ""}, {"enabled": "1"}):
        response = client.post(urls(domain)["lock"], data, follow=True)
        assert response.status_code == 200
        assert "should be on or off" in response.content.decode()
    assert registrar.calls == [] and Domain.objects.get(pk=domain.pk).registrar_lock is True


def test_toggles_are_post_only_and_csrf_protected(
    account: Account, login_client: Callable[..., Client], registrar: Any
) -> None:
    domain = DomainFactory(account=account)
    client = login_client(account.owner, account, csrf=True)
    assert client.get(urls(domain)["renew"]).status_code == 405
    assert client.post(urls(domain)["lock"], {"enabled": "off"}).status_code == 403
    assert client.post(urls(domain)["nameservers"], NS).status_code == 403
    assert registrar.calls == []


def test_an_expired_domain_cannot_be_changed_from_the_pages(
    account: Account, login_client: Callable[..., Client], registrar: Any
) -> None:
    domain = DomainFactory(account=account, status=Domain.Status.EXPIRED)
    client = login_client(account.owner, account)
    assert "Change Nameservers" not in client.get(urls(domain)["detail"]).content.decode()
    assert client.post(urls(domain)["nameservers"], NS).status_code == 302
    response = client.post(urls(domain)["renew"], {"enabled": "off"}, follow=True)
    assert "settings cannot be changed" in response.content.decode()
    assert registrar.calls == []


def test_another_accounts_ids_are_404(
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
    registrar: Any,
) -> None:
    theirs: Domain = DomainFactory(account=AccountFactory())
    u = urls(theirs)
    for user in (account.owner, member_factory("managedomains").user):
        client = login_client(user, account)
        assert client.get(u["detail"]).status_code == 404
        assert client.get(u["nameservers"]).status_code == 404
        assert client.post(u["nameservers"], NS).status_code == 404
        assert client.post(u["lock"], {"enabled": "off"}).status_code == 404
        assert client.post(u["renew"], {"enabled": "off"}).status_code == 404
    assert registrar.calls == []
    assert theirs.name not in login_client(account.owner, account).get(u["list"]).content.decode()


def test_forged_fields_are_ignored(
    account: Account, login_client: Callable[..., Client], registrar: Any
) -> None:
    mine = DomainFactory(account=account)
    theirs = DomainFactory(account=AccountFactory())
    client = login_client(account.owner, account)
    client.post(urls(mine)["lock"], {"enabled": "off", "domain": theirs.pk, "pk": theirs.pk})
    client.post(urls(mine)["nameservers"], {**NS, "account": theirs.account_id, "ns6": "x.y.z"})
    assert Domain.objects.get(pk=theirs.pk).registrar_lock is True
    assert Domain.objects.get(pk=theirs.pk).nameservers == theirs.nameservers
    assert Domain.objects.get(pk=mine.pk).nameservers == list(NS.values())


def test_the_list_runs_a_fixed_number_of_queries(
    account: Account, login_client: Callable[..., Client]
) -> None:
    client = login_client(account.owner, account)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("domains:list")).status_code == 200
        return len(ctx)

    DomainFactory.create_batch(5, account=account)
    count()
    few = count()
    DomainFactory.create_batch(40, account=account)
    assert count() == few


def test_menu_entry_and_tile_follow_the_permission(
    account: Account, member_factory: Callable[..., Membership], login_client: Any
) -> None:
    DomainFactory(account=account)
    DomainFactory(account=account, status=Domain.Status.CANCELLED)
    page = login_client(member_factory("domains").user, account).get(reverse("core:dashboard"))
    body = page.content.decode()
    assert reverse("domains:list") in body and '>1</span><span class="tile-label">Domains' in body
    other = login_client(member_factory("products").user, account).get(reverse("core:dashboard"))
    assert reverse("domains:list") not in other.content.decode()


def test_unlock_domain_asks_for_confirmation_first(
    account: Account, login_client: Callable[..., Client], registrar: Any
) -> None:
    """Unlocking allows a transfer away: like Revoke Access, the button opens a confirm
    page (GET changes nothing) and only its POST unlocks."""
    domain = DomainFactory(account=account, registrar_lock=True)
    client = login_client(account.owner, account)
    u = urls(domain)
    detail = client.get(u["detail"]).content.decode()
    assert f'href="{u["lock"]}"' in detail  # a link to the confirm page, not a form
    page = client.get(u["lock"])
    assert page.status_code == 200
    assert "transferred to another registrar" in page.content.decode()
    assert registrar.calls == [] and Domain.objects.get(pk=domain.pk).registrar_lock is True
    assert client.post(u["lock"], {"enabled": "off"}).status_code == 302
    assert Domain.objects.get(pk=domain.pk).registrar_lock is False
    # Unlocked: locking again is one click, and the confirm page just goes back.
    assert "Lock Domain" in client.get(u["detail"]).content.decode()
    assert client.get(u["lock"])["Location"] == u["detail"]


def test_an_unanswered_registry_change_shows_as_pending_and_the_registry_view(
    account: Account, login_client: Callable[..., Client], registrar: Any
) -> None:
    domain = DomainFactory(account=account, registrar_lock=True)
    client = login_client(account.owner, account)
    u = urls(domain)
    detail = client.get(u["detail"]).content.decode()
    assert "At the registry" in detail and "clientTransferProhibited" in detail
    registrar.uncertain = 99
    response = client.post(u["nameservers"], NS, follow=True)
    page = response.content.decode()
    assert "were saved" not in page and "has not confirmed" in page
    assert "is <strong>pending</strong>" in page and "Change Nameservers</a>" not in page
    assert Domain.objects.get(pk=domain.pk).nameservers != list(NS.values())


def test_a_registry_refusal_is_a_clear_message_and_changes_nothing(
    account: Account, login_client: Callable[..., Client], registrar: Any
) -> None:
    domain = DomainFactory(account=account, registrar_lock=True)
    client = login_client(account.owner, account)
    registrar.refuse = "The registry does not allow this change while the domain is locked."
    response = client.post(urls(domain)["nameservers"], NS)
    assert response.status_code == 200
    assert "does not allow this change while the domain is locked" in response.content.decode()
    assert Domain.objects.get(pk=domain.pk).nameservers == domain.nameservers
