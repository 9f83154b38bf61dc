"""Issue 16 in a real browser: a link into another account, the Hello menu, the phone.

* Sam owns Globex and is Acme's accountant. The email about a new Globex invoice links
  to it: opened while logged out it asks for the login and then shows the invoice, in
  Globex; opened while working in Acme it switches to Globex and shows it.
* The Hello menu closes on Escape and on a click outside; the navigation behind Menu does
  too, on a 375 px wide screen, where nothing runs off the screen, the invoice list is
  stacked cards with Status and Pay Now in view, and axe finds no serious or critical
  violation on the main pages. Without the script the navigation is simply on show.

Screenshots are saved under test-artifacts/screenshots/<test name>/ for review.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import close_old_connections

from acceptance.browser.conftest import Shots, assert_accessible
from acceptance.browser.helpers import log_in
from clientarea.accounts.models import Account, User
from clientarea.accounts.services import membership_grant
from clientarea.accounts.tests.factories import TEST_PASSWORD, AccountFactory, UserFactory
from clientarea.billing.models import Invoice
from clientarea.billing.tests.factories import make_invoice
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications.models import OutboxEmail
from clientarea.support.tests.factories import TicketMessageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 375, "height": 812}
INVOICE_LINK_RE = re.compile(r"https?://\S+/billing/invoices/\d+/")


def acme_and_globex() -> tuple[User, Account, User, Account]:
    owner: User = UserFactory.create(
        email="owner@example.com", first_name="Olivia", last_name="Byrne"
    )
    acme: Account = AccountFactory.create(owner=owner, company_name="Acme Web Studio")
    sam: User = UserFactory.create(email="sam@example.com", first_name="Sam", last_name="Ryan")
    globex: Account = AccountFactory.create(owner=sam, company_name="Globex Ltd")
    membership_grant(account=acme, user=sam, permission_codes=["invoices"], actor=owner)
    return owner, acme, sam, globex


def emailed_invoice_link(email: str, invoice: Invoice) -> str:
    close_old_connections()
    row = (
        OutboxEmail.objects.filter(to_email=email, subject__contains=f"#{invoice.number}")
        .order_by("-pk")
        .first()
    )
    assert row is not None, f"no invoice email queued for {email}"
    match = INVOICE_LINK_RE.search(row.body_text)
    assert match is not None, row.body_text
    return match.group(0)


def test_an_emailed_link_into_another_account_opens_the_invoice_there(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url
    base = live_server.url
    _, acme, _, globex = acme_and_globex()
    make_invoice(acme)  # Acme, where Sam is the accountant, has an invoice too
    invoice = make_invoice(globex)
    link = emailed_invoice_link("sam@example.com", invoice)

    # Logged out: the link asks for the login, then opens the invoice, in Globex.
    context = browser.new_context()
    page = context.new_page()
    page.goto(link)
    page.get_by_role("heading", name="Log in").wait_for()
    shots(page, "link opened logged out asks for the login")
    page.get_by_label("Email address").fill("sam@example.com")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("heading", name=f"Invoice #{invoice.number}").wait_for()
    assert page.url == link
    assert page.get_by_text("You are now working in Globex Ltd.").is_visible()
    shots(page, "after login the invoice in globex")
    assert_accessible(page)

    # Working in Acme (chosen in Switch Account), the same link switches back to Globex.
    page.get_by_text("Hello, Sam!").click()
    page.get_by_role("link", name="Switch Account").click()
    page.get_by_role("listitem").filter(has_text="Acme Web Studio").get_by_role(
        "button", name="Use this account"
    ).click()
    page.get_by_role("heading", name="Acme Web Studio").wait_for()
    shots(page, "working in acme")
    page.goto(link)
    page.get_by_role("heading", name=f"Invoice #{invoice.number}").wait_for()
    assert page.get_by_text("You are now working in Globex Ltd.").is_visible()
    page.get_by_text("Hello, Sam!").click()
    assert page.locator(".usermenu-account").inner_text() == "Globex Ltd"
    shots(page, "the link switched to globex")

    # An invoice of an account Sam cannot use: not found, and Sam stays in Globex.
    stranger = AccountFactory.create(company_name="Initech")
    theirs = make_invoice(stranger)
    response = page.goto(f"{base}/billing/invoices/{theirs.pk}/")
    assert response is not None and response.status == 404
    shots(page, "another account s invoice is not found")
    page.goto(f"{base}/")
    assert page.get_by_role("heading", name="Globex Ltd").is_visible()
    context.close()


def test_the_hello_menu_closes_on_escape_and_on_a_click_outside(
    browser: Any, live_server: Any, shots: Shots
) -> None:
    acme_and_globex()
    page = browser.new_page()
    log_in(page, live_server.url, "owner@example.com")
    menu = page.locator("details.usermenu")
    summary = page.get_by_text("Hello, Olivia!")
    # One account: nothing to switch to.
    summary.click()
    assert menu.get_attribute("open") is not None
    assert page.get_by_role("link", name="Switch Account").count() == 0
    shots(page, "hello menu open")

    page.keyboard.press("Escape")
    assert menu.get_attribute("open") is None
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    shots(page, "closed on escape")

    summary.click()
    assert page.get_by_role("link", name="Profile").is_visible()
    page.locator("footer").click()
    assert menu.get_attribute("open") is None
    assert not page.get_by_role("link", name="Profile").is_visible()
    shots(page, "closed on a click outside")

    # Keyboard only: open with Enter, Tab into it, Escape closes and returns focus.
    summary.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Profile"
    page.keyboard.press("Escape")
    assert menu.get_attribute("open") is None
    assert page.evaluate("document.activeElement.tagName") == "SUMMARY"
    page.close()


def in_view(page: Any, locator: Any) -> bool:
    box = locator.bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5


def no_sideways_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_on_a_phone_the_menus_stay_on_screen_and_tables_become_cards(
    browser: Any, live_server: Any, shots: Shots
) -> None:
    _, acme, _, _ = acme_and_globex()
    invoice = make_invoice(acme)
    make_invoice(acme)
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    log_in(page, live_server.url, "owner@example.com")
    page.get_by_role("heading", name="Acme Web Studio").wait_for()
    toggle = page.get_by_role("button", name="Menu")
    nav = page.get_by_role("navigation", name="Main")
    assert toggle.is_visible()
    assert toggle.get_attribute("aria-expanded") == "false"
    assert not nav.get_by_role("link", name="Billing").is_visible()
    assert no_sideways_scroll(page)
    shots(page, "dashboard menu closed")

    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    for name in ("Dashboard", "Services", "Domains", "Billing", "Support"):
        link = nav.get_by_role("link", name=name)
        assert link.is_visible() and in_view(page, link), name
    assert nav.get_by_role("link", name="Dashboard").get_attribute("aria-current") == "page"
    # The entries are one under the other, not wrapped side by side.
    tops = [nav.get_by_role("link", name=n).bounding_box()["y"] for n in ("Dashboard", "Billing")]
    assert tops[0] < tops[1]
    shots(page, "menu open")
    assert_accessible(page)
    page.keyboard.press("Escape")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert not nav.get_by_role("link", name="Billing").is_visible()

    # The Hello menu opens inside the screen.
    page.get_by_text("Hello, Olivia!").click()
    for name in ("Profile", "User Management", "Logout"):
        item = page.get_by_role("link", name=name).or_(page.get_by_role("button", name=name))
        assert item.is_visible() and in_view(page, item), name
    assert in_view(page, page.locator(".usermenu ul"))
    shots(page, "hello menu open")
    page.locator("footer").click()
    assert page.locator("details.usermenu").get_attribute("open") is None

    # Billing through the menu: the invoices are cards, Status and Pay Now in view.
    toggle.click()
    nav.get_by_role("link", name="Billing").click()
    page.get_by_role("heading", name="Invoices").wait_for()
    # The menu is closed again on the new page; its Billing entry is the current page.
    assert toggle.get_attribute("aria-expanded") == "false"
    assert page.locator("#mainnav a", has_text="Billing").get_attribute("aria-current") == "page"
    row = page.get_by_role("row").filter(has_text=f"#{invoice.number}")
    pay = row.get_by_role("link", name="Pay Now")
    status = row.locator('td[data-label="Status"]')
    assert pay.is_visible() and in_view(page, pay)
    assert status.is_visible() and in_view(page, status)
    label = status.evaluate("cell => getComputedStyle(cell, '::before').content")
    assert label == '"Status"'
    assert no_sideways_scroll(page)
    shots(page, "invoice list as cards")
    assert_accessible(page)

    pay.click()
    page.get_by_role("group", name="Pay with").wait_for()
    assert no_sideways_scroll(page)
    shots(page, "pay invoice")
    context.close()


def test_without_the_script_the_navigation_is_on_show(
    browser: Any, live_server: Any, shots: Shots
) -> None:
    acme_and_globex()
    context = browser.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    log_in(page, live_server.url, "owner@example.com")
    nav = page.get_by_role("navigation", name="Main")
    assert page.get_by_role("button", name="Menu").count() == 0  # hidden: nothing to do
    for name in ("Dashboard", "Billing"):
        assert nav.get_by_role("link", name=name).is_visible(), name
    assert no_sideways_scroll(page)  # the one row of entries scrolls within itself
    shots(page, "no script navigation")
    page.get_by_text("Hello, Olivia!").click()
    assert in_view(page, page.get_by_role("link", name="Profile"))
    shots(page, "no script hello menu")
    context.close()


def test_main_pages_at_375_px_have_no_serious_accessibility_violations(
    browser: Any, live_server: Any, shots: Shots
) -> None:
    owner, acme, sam, _ = acme_and_globex()
    invoice = make_invoice(acme)
    service = ServiceFactory.create(account=acme, product_name="Business Hosting")
    domain = DomainFactory.create(account=acme, name="acme-studio.example")
    message = TicketMessageFactory.create(ticket__account=acme, ticket__subject="Email bounces")
    pages = {
        "login": "/login/",
        "dashboard": "/",
        "invoices": "/billing/",
        "invoice": f"/billing/invoices/{invoice.pk}/",
        "pay invoice": f"/billing/invoices/{invoice.pk}/pay/",
        "services": "/services/",
        "service": f"/services/{service.pk}/",
        "domains": "/domains/",
        "domain": f"/domains/{domain.pk}/",
        "tickets": "/support/",
        "ticket": f"/support/{message.ticket.pk}/",
        "open ticket": "/support/new/",
        "user management": "/account/users/",
        "invite form": "/account/users/invite/",
        "contacts": "/account/contacts/",
        "add contact": "/account/contacts/add/",
        "email history": "/emails/",
        "activity log": "/activity/",
        "security": "/security/",
        "profile": "/profile/",
        "switch account (two accounts)": "/accounts/switch/",
    }
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    failures: list[str] = []
    for name, path in pages.items():
        if name == "dashboard":
            log_in(page, live_server.url, owner.email)
        if name.startswith("switch account"):
            context.close()
            context = browser.new_context(viewport=PHONE)
            page = context.new_page()
            log_in(page, live_server.url, sam.email)
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None and response.status == 200, f"{name}: {path}"
        shots(page, name)
        try:
            assert_accessible(page)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
        if not no_sideways_scroll(page):
            failures.append(f"{name}: the page scrolls sideways at 375 px")
    context.close()
    assert failures == []
