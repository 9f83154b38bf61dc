"""Products & Services pages from the attacker's side: permissions, other accounts' ids,
the password never on a page that should not show it, reveal/change behaviour."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.reauth import SESSION_KEY
from clientarea.accounts.tests.factories import AccountFactory
from clientarea.audit.models import AuditEvent
from clientarea.hosting.models import Service
from clientarea.notifications.models import OutboxEmail

from .factories import SERVICE_PASSWORD, ServiceFactory

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "Meridian-Falcon-Sextant-Quay-5"


def stale(client: Client) -> Client:
    """Logged in an hour ago: sensitive actions ask to confirm the password first."""
    session = client.session
    session[SESSION_KEY] = int(time.time()) - 3600
    session.save()
    return client


def urls(service: Service) -> dict[str, str]:
    return {
        "list": reverse("hosting:list"),
        "detail": reverse("hosting:detail", args=[service.pk]),
        "reveal": reverse("hosting:password_reveal", args=[service.pk]),
        "change": reverse("hosting:password_change", args=[service.pk]),
    }


@pytest.mark.parametrize("codes", [(), ("domains", "tickets", "invoices", "managedomains")])
def test_without_products_every_page_and_action_is_refused(
    account: Account, member_factory: Callable[..., Membership], fresh_client: Any, codes: Any
) -> None:
    service = ServiceFactory(account=account)
    client = fresh_client(member_factory(*codes).user, account)
    u = urls(service)
    for url in (u["list"], u["detail"], u["change"]):
        assert client.get(url).status_code == 403, url
    for url in (u["reveal"], u["change"]):
        assert client.post(url, {"new_password1": NEW_PASSWORD}).status_code == 403, url
    assert not AuditEvent.objects.filter(action__startswith="service.password").exists()


def test_products_lists_and_views_but_cannot_reveal_or_change(
    account: Account, member_factory: Callable[..., Membership], fresh_client: Any, panel: Any
) -> None:
    service = ServiceFactory(account=account, product_name="cPanel Business")
    client = fresh_client(member_factory("products").user, account)
    u = urls(service)
    listing = client.get(u["list"])
    assert listing.status_code == 200 and "cPanel Business" in listing.content.decode()
    detail = client.get(u["detail"]).content.decode()
    assert service.username in detail and "Reveal Password" not in detail
    assert "View &amp; Modify Product Password" in detail
    assert client.post(u["reveal"]).status_code == 403
    assert client.get(u["change"]).status_code == 403
    data = {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    assert client.post(u["change"], data).status_code == 403
    assert panel.calls == []


def test_the_password_is_on_no_page_without_a_reveal(
    account: Account, member_factory: Callable[..., Membership], fresh_client: Any
) -> None:
    service = ServiceFactory(account=account)
    token = Service.objects.get(pk=service.pk).password_ciphertext
    for user in (member_factory("products").user, member_factory("manageproducts").user,
                 account.owner):  # fmt: skip
        client = fresh_client(user, account)
        for url in (urls(service)["list"], urls(service)["detail"], urls(service)["change"],
                    reverse("core:dashboard")):  # fmt: skip
            body = client.get(url).content.decode()
            assert SERVICE_PASSWORD not in body and token not in body, url


def test_manageproducts_reveals_with_one_post_not_cached_and_audited(
    account: Account, member_factory: Callable[..., Membership], fresh_client: Any
) -> None:
    member = member_factory("manageproducts")
    service = ServiceFactory(account=account)
    client = fresh_client(member.user, account, csrf=True)
    client.get(urls(service)["detail"])  # sets the CSRF cookie
    detail = client.get(urls(service)["detail"]).content.decode()
    assert "Reveal Password" in detail
    response = client.post(
        urls(service)["reveal"], {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}
    )
    assert response.status_code == 200
    assert SERVICE_PASSWORD in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert (
        AuditEvent.objects.filter(action="service.password_revealed", actor=member.user).count()
        == 1
    )
    assert OutboxEmail.objects.filter(to_email=account.owner.email, kind="security").count() == 1
    # Shown once: the next visit hides it again.
    assert SERVICE_PASSWORD not in client.get(urls(service)["detail"]).content.decode()


def test_reveal_is_csrf_protected_and_post_only(account: Account, fresh_client: Any) -> None:
    service = ServiceFactory(account=account)
    client = fresh_client(account.owner, account, csrf=True)
    assert client.post(urls(service)["reveal"]).status_code == 403  # no CSRF token
    get = client.get(urls(service)["reveal"])
    assert get.status_code == 302 and SERVICE_PASSWORD not in get.content.decode()
    assert not AuditEvent.objects.filter(action="service.password_revealed").exists()


def test_reveal_and_change_need_a_recent_password_confirmation(
    account: Account, login_client: Callable[..., Client], panel: Any
) -> None:
    service = ServiceFactory(account=account)
    client = stale(login_client(account.owner, account))
    for response in (
        client.post(urls(service)["reveal"]),
        client.get(urls(service)["change"]),
        client.post(urls(service)["change"], {"new_password1": NEW_PASSWORD,
                                              "new_password2": NEW_PASSWORD}),
    ):  # fmt: skip
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:confirm_password"))
        assert SERVICE_PASSWORD not in response.content.decode()
    assert panel.calls == []
    assert not AuditEvent.objects.filter(action__startswith="service.password").exists()


def test_another_accounts_ids_are_404_on_every_page(
    account: Account, member_factory: Callable[..., Membership], login_client: Any,
    fresh_client: Any, panel: Any,
) -> None:  # fmt: skip
    theirs = ServiceFactory(account=AccountFactory())
    u = urls(theirs)
    member = member_factory("manageproducts")
    for client in (fresh_client(account.owner, account), stale(login_client(member.user, account))):
        assert client.get(u["detail"]).status_code == 404
        assert client.post(u["reveal"]).status_code == 404
        assert client.get(u["change"]).status_code == 404
        data = {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
        assert client.post(u["change"], data).status_code == 404
    assert panel.calls == []
    assert not AuditEvent.objects.filter(action__startswith="service.password").exists()


def test_forged_fields_do_not_redirect_the_reveal(account: Account, fresh_client: Any) -> None:
    mine = ServiceFactory(account=account, password="Mine-own-password-123")
    theirs = ServiceFactory(account=AccountFactory(), password="Their-password-456")
    client = fresh_client(account.owner, account)
    body = client.post(
        urls(mine)["reveal"], {"pk": theirs.pk, "service": theirs.pk, "account": theirs.account_id}
    ).content.decode()
    assert "Mine-own-password-123" in body and "Their-password-456" not in body


def test_change_form_checks_confirmation_and_strength(
    account: Account, member_factory: Callable[..., Membership], fresh_client: Any, panel: Any
) -> None:
    member = member_factory("manageproducts")
    service = ServiceFactory(account=account)
    client = fresh_client(member.user, account)
    url = urls(service)["change"]
    mismatch = client.post(
        url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "x"}
    )
    assert "The two passwords do not match." in mismatch.content.decode()
    weak = client.post(url, {"new_password1": "short", "new_password2": "short"})
    assert weak.status_code == 200 and "Use at least" in weak.content.decode()
    assert panel.calls == []
    assert NEW_PASSWORD not in mismatch.content.decode()  # never echoed back
    ok = client.post(url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert ok.status_code == 302 and ok["Location"] == urls(service)["detail"]
    assert panel.calls == [(service.pk, NEW_PASSWORD)]
    assert Service.objects.get(pk=service.pk).decrypt_password() == NEW_PASSWORD
    email = OutboxEmail.objects.get(to_email=account.owner.email)
    assert NEW_PASSWORD not in email.body_text and "changed" in email.subject


def test_a_panel_refusal_is_shown_on_the_form(
    account: Account, fresh_client: Any, panel: Any
) -> None:
    panel.refuse = "The panel is in maintenance."
    service = ServiceFactory(account=account)
    response = fresh_client(account.owner, account).post(
        urls(service)["change"], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert response.status_code == 200
    assert "The panel is in maintenance." in response.content.decode()
    assert Service.objects.get(pk=service.pk).decrypt_password() == SERVICE_PASSWORD


def test_terminated_service_offers_no_change(account: Account, fresh_client: Any) -> None:
    service = ServiceFactory(account=account, status=Service.Status.TERMINATED)
    client = fresh_client(account.owner, account)
    assert "Change Password" not in client.get(urls(service)["detail"]).content.decode()
    assert client.get(urls(service)["change"]).status_code == 302


def test_the_list_runs_a_fixed_number_of_queries(account: Account, fresh_client: Any) -> None:
    client = fresh_client(account.owner, account)

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("hosting:list")).status_code == 200
        return len(ctx)

    ServiceFactory.create_batch(5, account=account)
    count()  # the first request of a session writes it once; measure the steady state
    few = count()
    ServiceFactory.create_batch(40, account=account)
    assert count() == few


def test_list_filters_by_status_and_ignores_bad_filters(
    account: Account, fresh_client: Any
) -> None:
    ServiceFactory(account=account, product_name="Running one")
    ServiceFactory(account=account, product_name="Stopped one", status=Service.Status.SUSPENDED)
    ServiceFactory(account=AccountFactory(), product_name="Somebody else's")
    client = fresh_client(account.owner, account)
    suspended = client.get(reverse("hosting:list"), {"status": "suspended"}).content.decode()
    assert "Stopped one" in suspended and "Running one" not in suspended
    everything = client.get(reverse("hosting:list"), {"status": "<b>", "page": "x"})
    assert everything.status_code == 200
    body = everything.content.decode()
    assert "Running one" in body and "Stopped one" in body and "Somebody else" not in body


def test_menu_entry_and_tile_follow_the_permission(
    account: Account, member_factory: Callable[..., Membership], fresh_client: Any
) -> None:
    ServiceFactory.create_batch(2, account=account)
    ServiceFactory(account=account, status=Service.Status.SUSPENDED)
    with_products = fresh_client(member_factory("products").user, account)
    page = with_products.get(reverse("core:dashboard")).content.decode()
    assert "Active services" in page and reverse("hosting:list") in page
    without = fresh_client(member_factory("invoices").user, account)
    page = without.get(reverse("core:dashboard")).content.decode()
    assert "Active services" not in page and reverse("hosting:list") not in page
