"""The dashboard's "Needs your attention", per persona, in a real browser: the owner sees
every item with its action, the accountant the invoices alone, a developer limited to one
website only that website's items; Pay Now and Renew lead where they say; no serious
accessibility violation, on a desktop and at 375 px."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from acceptance.browser.conftest import Shots, assert_accessible
from acceptance.browser.helpers import log_in
from clientarea.accounts.models import Account, User
from clientarea.accounts.services import membership_grant
from clientarea.accounts.tests.factories import AccountFactory, InvitationFactory, UserFactory
from clientarea.billing.models import Invoice
from clientarea.billing.tests.factories import make_invoice
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.models import Service
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.support.models import Ticket
from clientarea.support.tests.factories import TicketFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _world() -> dict[str, Any]:
    today = timezone.localdate()
    owner: User = UserFactory.create(email="owner@example.com", first_name="Olivia")
    account: Account = AccountFactory.create(owner=owner, company_name="Acme Web Studio")
    overdue: Invoice = make_invoice(account, issue_date=today - timedelta(days=30))
    website: Service = ServiceFactory.create(
        account=account, product_name="Business Hosting", status=Service.Status.SUSPENDED
    )
    ServiceFactory.create(
        account=account, product_name="Shop Hosting", status=Service.Status.SUSPENDED
    )
    site_domain = DomainFactory.create(
        account=account, name="acme-studio.example", expiry_date=today + timedelta(days=9)
    )
    DomainFactory.create(
        account=account, name="acme-shop.example", expiry_date=today + timedelta(days=12)
    )
    TicketFactory.create(
        account=account, subject="Your site is back online", status=Ticket.Status.ANSWERED
    )
    InvitationFactory.create(account=account, email="bookkeeper@example.com")
    accountant = UserFactory.create(email="accountant@example.com", first_name="Aoife")
    membership_grant(account=account, user=accountant, permission_codes=["invoices"], actor=owner)
    webdev = UserFactory.create(email="webdev@example.com", first_name="Wes")
    membership_grant(
        account=account,
        user=webdev,
        permission_codes=["products", "domains", "tickets"],
        scope={"service": [website.pk], "domain": [site_domain.pk]},
        actor=owner,
    )
    return {"account": account, "overdue": overdue, "site_domain": site_domain}


def _attention(page: Any) -> str:
    section = page.get_by_role("region", name="Needs your attention")
    section.wait_for()
    return str(section.inner_text())


def test_each_persona_sees_what_needs_their_attention(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url
    base = live_server.url
    w = _world()
    number = w["overdue"].number

    # The owner: every kind of item, each with its action.
    context = browser.new_context()
    page = context.new_page()
    log_in(page, base, "owner@example.com")
    page.goto(f"{base}/")
    text = _attention(page)
    for expected in (
        f"Invoice #{number} is overdue",
        "acme-studio.example expires in 9 days",
        "acme-shop.example expires in 12 days",
        "Business Hosting is suspended",
        "Shop Hosting is suspended",
        "awaits your reply: Your site is back online",
        "Invitation to bookkeeper@example.com not accepted yet",
        "Two-factor authentication is not on for your login",
    ):
        assert expected in text, expected
    shots(page, "owner dashboard")
    assert_accessible(page)
    page.set_viewport_size({"width": 375, "height": 800})
    shots(page, "owner dashboard at 375 px")
    assert_accessible(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.get_by_role("link", name=re.compile(rf"^Pay Now\W+Invoice #{number} is overdue")).click()
    # The address of the page after, not a load state (which could be the dashboard's).
    page.wait_for_url(f"{base}/billing/invoices/{w['overdue'].pk}/pay/")
    shots(page, "pay now")
    page.goto(f"{base}/")
    page.get_by_role("link", name=re.compile(r"^Renew\W+acme-studio\.example expires")).click()
    page.wait_for_url(f"{base}/domains/{w['site_domain'].pk}/")
    shots(page, "renew opens the domain")
    context.close()

    # The accountant: the invoice, nothing of services, domains, tickets or invitations.
    context = browser.new_context()
    page = context.new_page()
    log_in(page, base, "accountant@example.com")
    page.goto(f"{base}/")
    text = _attention(page)
    assert f"Invoice #{number} is overdue" in text
    for absent in ("expires in", "is suspended", "awaits your reply", "bookkeeper@"):
        assert absent not in text, absent
    assert "Two-factor authentication is not on for your login" in text
    shots(page, "accountant dashboard")
    context.close()

    # The web developer limited to one website: only that website's items.
    context = browser.new_context()
    page = context.new_page()
    log_in(page, base, "webdev@example.com")
    page.goto(f"{base}/")
    text = _attention(page)
    assert "Business Hosting is suspended" in text
    assert "acme-studio.example expires in 9 days" in text
    for absent in ("Shop Hosting", "acme-shop.example", "Invoice #", "Your site is back"):
        assert absent not in text, absent
    shots(page, "scoped developer dashboard")
    assert_accessible(page)
    context.close()
