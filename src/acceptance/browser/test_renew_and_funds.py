"""Journeys of paying for things: renewing a domain (a renewal invoice at the price list's
price, paid by card, then renewed at the registry), adding funds to the credit balance,
and paying two invoices at once."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import close_old_connections
from django.utils import timezone

from acceptance.browser.conftest import Shots, assert_accessible
from acceptance.browser.helpers import log_in
from clientarea.accounts.models import Account, User
from clientarea.accounts.tests.factories import AccountFactory, UserFactory
from clientarea.billing.models import CreditEntry, Invoice
from clientarea.billing.tests.factories import make_invoice
from clientarea.billing.totals import LineInput
from clientarea.domains.drivers import add_years
from clientarea.domains.models import DomainPrice, DomainRenewal
from clientarea.domains.tests.factories import DomainFactory

# The notice after paying. Not just "is paid": the pay page itself says "once it is paid,
# the domain is renewed", so such a wait ended before the payment was sent.
PAID_NOTICE = re.compile(r"Thank you: invoice #\S+ is paid\.")
# Where Continue to Payment and Pay Selected Invoices lead: waited for by address, since
# a load state right after the click can be the page the click was made on.
PAY_PAGE = re.compile(r"/billing/invoices/\d+/pay/$")

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
D = Decimal


def _owner_account() -> Account:
    owner: User = UserFactory.create(
        email="owner@example.com", first_name="Olivia", last_name="Byrne"
    )
    return AccountFactory.create(owner=owner, company_name="Acme Web Studio", currency="EUR")


def _pay_by_new_card(page: Any, amount: str) -> None:
    page.get_by_label("A new card").check()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry month").select_option(label="12")
    page.get_by_label("Expiry year").select_option(index=3)
    page.get_by_label("Security code (CVC)").fill("123")
    # The button's script asks the tokenizer, then posts the form: wait for that post's
    # page (a load state right after the click is the pay page's own).
    with page.expect_navigation():
        page.get_by_role("button", name=f"Pay {amount} EUR").click()


def test_renewing_a_domain(browser: Any, live_server: Any, settings: Any, shots: Shots) -> None:
    settings.SITE_URL = live_server.url
    settings.DEMO_MODE = True  # the sandbox's tokenizer takes cards only in demonstrations
    base = live_server.url
    account = _owner_account()
    expiry = timezone.localdate() + timedelta(days=10)
    domain = DomainFactory.create(account=account, name="acme-studio.com", expiry_date=expiry)
    DomainPrice.objects.create(tld="com", years=1, renew_price=D("14.99"), currency="EUR")
    DomainPrice.objects.create(tld="com", years=2, renew_price=D("28.99"), currency="EUR")
    DomainFactory.create(account=account, name="acme-studio.dev")  # no price for .dev

    page = browser.new_context().new_page()
    log_in(page, base, "owner@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Domains").click()
    page.get_by_role("link", name="acme-studio.com").click()
    page.get_by_role("link", name="Renew").click()
    page.get_by_role("heading", name="Renew acme-studio.com").wait_for()
    assert page.get_by_role("group", name="Renewal period").is_visible()
    page.get_by_label("2 years: 28.99 EUR").check()
    shots(page, "choose the renewal period")
    assert_accessible(page)
    page.set_viewport_size({"width": 375, "height": 800})
    shots(page, "choose the renewal period at 375 px")
    assert_accessible(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("button", name="Continue to Payment").click()
    # The pay page's address: a load state could be the renewal form's, which also says
    # "Once it is paid, the domain is renewed at the registry" (text matches ignore case).
    page.wait_for_url(PAY_PAGE)
    assert page.get_by_text("once it is paid, the domain is renewed at the registry").is_visible()
    shots(page, "pay the renewal invoice")
    _pay_by_new_card(page, "28.99")
    page.get_by_text(PAID_NOTICE).wait_for()
    shots(page, "renewal invoice paid")

    close_old_connections()
    renewal = DomainRenewal.objects.get()
    assert renewal.state == DomainRenewal.State.DONE
    new_expiry = add_years(expiry, 2)
    page.goto(f"{base}/domains/{domain.pk}/")
    page.get_by_text("Renewed for 2 years").wait_for()
    assert page.get_by_text(new_expiry.strftime("%-d %b %Y")).first.is_visible()
    shots(page, "domain renewed")
    assert_accessible(page)

    # A domain without a price: the page says so and offers a ticket.
    page.goto(f"{base}/domains/")
    page.get_by_role("link", name="acme-studio.dev").click()
    page.get_by_role("link", name="Renew").click()
    page.get_by_role("heading", name="Renew acme-studio.dev", exact=True).wait_for()
    assert page.get_by_text("There is no renewal price for acme-studio.dev").is_visible()
    assert page.get_by_role("link", name="open a support ticket").is_visible()
    shots(page, "no price offers a ticket")
    assert_accessible(page)


def test_adding_funds(browser: Any, live_server: Any, settings: Any, shots: Shots) -> None:
    settings.SITE_URL = live_server.url
    settings.DEMO_MODE = True  # the sandbox's tokenizer takes cards only in demonstrations
    settings.BILLING_ADD_FUNDS_MIN = "10.00"
    settings.BILLING_ADD_FUNDS_MAX = "500.00"
    base = live_server.url
    account = _owner_account()

    page = browser.new_context().new_page()
    log_in(page, base, "owner@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    page.get_by_role("navigation", name="Billing").get_by_role("link", name="Add Funds").click()
    page.get_by_role("heading", name="Add Funds").wait_for()
    page.get_by_label("Amount (EUR)").fill("5")
    page.get_by_role("button", name="Continue to Payment").click()
    page.get_by_text("Enter an amount between 10.00 and 500.00.").wait_for()
    shots(page, "below the minimum")
    assert_accessible(page)
    page.get_by_label("Amount (EUR)").fill("50.00")
    page.get_by_role("button", name="Continue to Payment").click()
    page.wait_for_url(PAY_PAGE)
    assert page.get_by_label(re.compile("Credit balance")).count() == 0
    shots(page, "pay the funds invoice")
    _pay_by_new_card(page, "50.00")
    page.get_by_text(PAID_NOTICE).wait_for()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    # The list's address: a .billing-summary is not only the list's (the pay page has one,
    # with its balance due), so read it once the list is there.
    page.wait_for_url(f"{base}/billing/")
    summary = page.locator(".billing-summary").inner_text()
    assert "50.00 EUR" in summary
    shots(page, "credit balance after adding funds")
    close_old_connections()
    account.refresh_from_db()
    assert account.credit_balance == D("50.00")
    assert CreditEntry.objects.filter(kind=CreditEntry.Kind.FUNDS).count() == 1


def test_paying_two_invoices_at_once(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url
    settings.DEMO_MODE = True  # the sandbox's tokenizer takes cards only in demonstrations
    base = live_server.url
    account = _owner_account()
    first = make_invoice(account, lines=[LineInput("Hosting", D("1"), D("10.00"), D("23"))])
    second = make_invoice(account, lines=[LineInput("Backups", D("1"), D("4.50"), D("23"))])
    total = first.total + second.total

    page = browser.new_context().new_page()
    log_in(page, base, "owner@example.com")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    page.get_by_role("heading", name="Invoices").wait_for()
    page.get_by_label(f"Choose invoice #{first.number}").check()
    page.get_by_label(f"Choose invoice #{second.number}").check()
    shots(page, "choose two invoices")
    assert_accessible(page)
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.get_by_role("button", name="Pay Selected Invoices").is_visible()
    shots(page, "choose two invoices at 375 px")
    assert_accessible(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("button", name="Pay Selected Invoices").click()
    page.wait_for_url(PAY_PAGE)
    assert page.get_by_text("pays the 2 chosen invoices in one payment").is_visible()
    shots(page, "pay the combined invoice")
    _pay_by_new_card(page, f"{total}")
    page.get_by_text(PAID_NOTICE).wait_for()
    shots(page, "combined invoice paid")
    close_old_connections()
    for invoice in (first, second):
        invoice.refresh_from_db()
        assert invoice.status == Invoice.Status.PAID
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    # The list's address: the combined invoice's page has rows naming both invoices too.
    page.wait_for_url(f"{base}/billing/")
    for invoice in (first, second):
        row = page.get_by_role("row").filter(has_text=f"#{invoice.number}")
        assert "Paid" in row.inner_text()
    shots(page, "both invoices paid")
