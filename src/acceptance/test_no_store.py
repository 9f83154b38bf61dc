"""The browser's cache is a channel too: nothing a logged-in person is shown may be kept.

Every GET route of the access table, for every kind of logged-in actor (owner, each single
permission, all, none, revoked, expired, another account's member, staff), on the
account's own object and on another account's: whatever the answer (a page, a download, a
redirect, a 403 or 404 page), it carries ``Cache-Control: no-store`` and ``Vary: Cookie``.
The browser obeys the header: a page it never stored cannot be shown again by Back after
logging out or after the owner revoked the access. Static files and pages shown to
anonymous visitors stay cacheable.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from acceptance.actors import browser, post
from acceptance.test_access_matrix import ACTORS, World, url_for
from clientarea.access_table import ROUTES, Route
from clientarea.accounts.services import membership_revoke
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory, UserFactory
from clientarea.billing.tests.factories import make_invoice
from clientarea.support.tests.factories import (
    AttachmentFactory,
    TicketFactory,
    TicketMessageFactory,
)

pytestmark = pytest.mark.django_db

GET_ROUTES = [r for r in ROUTES if "GET" in r.methods]
LOGGED_IN = [a for a in ACTORS if a != "anonymous"]


def never_stored(response: Any) -> bool:
    cache_control = {p.strip() for p in response.get("Cache-Control", "").split(",")}
    vary = {p.strip().lower() for p in response.get("Vary", "").split(",")}
    return {"no-store", "no-cache", "private", "must-revalidate"} <= cache_control and (
        "cookie" in vary
    )


def cases() -> list[Any]:
    return [
        pytest.param(route, target, id=f"{route.name}-{target}")
        for route in GET_ROUTES
        for target in (("A", "B") if route.object_param else ("-",))
    ]


@pytest.mark.parametrize(("route", "target"), cases())
def test_every_answer_to_a_logged_in_person_is_never_stored(
    route: Route, target: str, matrix_world: World
) -> None:
    world = matrix_world  # built once for the module (acceptance/conftest.py)
    url = url_for(route, world, target)
    failures = []
    for actor in LOGGED_IN:
        response = world.sessions[actor].get(url)
        if response.status_code >= 500 or not never_stored(response):
            failures.append(
                f"{actor}: {response.status_code} Cache-Control="
                f"{response.get('Cache-Control')!r} Vary={response.get('Vary')!r}"
            )
    assert failures == [], url


def test_the_invoice_pdf_and_a_ticket_attachment_are_never_stored() -> None:
    account = AccountFactory()
    invoice = make_invoice(account)
    message = TicketMessageFactory(ticket=TicketFactory(account=account))
    attachment = AttachmentFactory(message=message)
    client = browser(account.owner, account)
    pdf = client.get(reverse("billing:invoice_pdf", kwargs={"pk": invoice.pk}))
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert never_stored(pdf)
    download = client.get(reverse("support:attachment_download", kwargs={"pk": attachment.pk}))
    assert download.status_code == 200 and "attachment" in download["Content-Disposition"]
    assert never_stored(download)


def test_error_pages_shown_to_a_logged_in_person_are_never_stored() -> None:
    account = AccountFactory()
    client = browser(account.owner, account)
    missing = client.get("/no-such-page/")
    assert missing.status_code == 404 and never_stored(missing)
    sub = MembershipFactory(account=account, permissions=["tickets"])
    refused = browser(sub.user, account).get(reverse("billing:invoice_list"))
    assert refused.status_code == 403 and never_stored(refused)


def test_the_back_office_is_never_stored() -> None:
    staff = UserFactory(is_staff=True, is_superuser=True)
    assert never_stored(browser(staff).get("/admin/", follow=True))
    assert never_stored(Client().get("/admin/login/", follow=True))


def test_after_revoke_access_the_invoice_page_was_never_stored() -> None:
    """The reproduction: a sub-account reads an invoice, the owner revokes the access, the
    person presses Back. The page the browser got carried no-store, so it kept no copy and
    Back asks the server again, which now answers "access removed" (and tells the browser
    to drop what it kept of the site)."""
    account = AccountFactory()
    membership = MembershipFactory(account=account, permissions=["invoices"])
    invoice = make_invoice(account)
    url = reverse("billing:invoice_detail", kwargs={"pk": invoice.pk})
    client = browser(membership.user, account)
    page = client.get(url)
    assert page.status_code == 200 and "Business Hosting" in page.content.decode()
    assert never_stored(page)
    membership_revoke(membership=membership, actor=account.owner)
    again = client.get(url)
    assert again.status_code == 302
    assert again["Location"].startswith(reverse("accounts:access_removed"))
    assert never_stored(again)
    removed = client.get(again["Location"])
    assert removed["Clear-Site-Data"] == '"cache"' and never_stored(removed)
    assert "Business Hosting" not in removed.content.decode()


def test_logging_in_and_out_are_never_stored_and_logout_clears_the_cache() -> None:
    user = UserFactory()
    user.set_password("correct-horse-battery-staple")
    user.save()
    client = browser()
    login = post(
        client,
        reverse("accounts:login"),
        {"username": user.email, "password": "correct-horse-battery-staple"},
    )
    assert login.status_code == 302 and "_auth_user_id" in client.session
    assert never_stored(login)
    logout = post(client, reverse("accounts:logout"))
    assert logout.status_code == 302 and "_auth_user_id" not in client.session
    assert never_stored(logout)
    assert logout["Clear-Site-Data"] == '"cache"'


def test_what_anonymous_visitors_are_shown_stays_cacheable() -> None:
    """Without a login or a session nothing personal is shown: the redirect to the login
    page and the "page not found" page keep their default caching. (The login, reset and
    invitation pages are never stored either way: they carry tokens and forms.)"""
    visitor = Client()
    for response, status in (
        (visitor.get(reverse("core:dashboard")), 302),
        (visitor.get("/no-such-page/"), 404),
    ):
        assert response.status_code == status
        assert "no-store" not in response.get("Cache-Control", "")
        assert "Clear-Site-Data" not in response


@override_settings(WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=True)
def test_static_files_stay_cacheable_even_for_a_logged_in_person() -> None:
    account = AccountFactory()
    client = browser(account.owner, account)  # a fresh handler reads the settings above
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
    assert "cookie" not in response.get("Vary", "").lower()
