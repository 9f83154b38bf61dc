"""The help article, walked literally in a real browser: an owner invites an accountant
who can see and pay invoices and nothing else, then revokes their access."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import close_old_connections

from acceptance.browser.conftest import Shots, assert_accessible
from acceptance.browser.helpers import (
    accept_invitation,
    invitation_link,
    log_in,
    main_menu,
    open_user_menu,
    time_passes,
)
from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.tests.factories import TEST_PASSWORD, AccountFactory, UserFactory
from clientarea.billing.models import Invoice
from clientarea.billing.tests.factories import make_invoice
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.support.tests.factories import TicketFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_accountant_is_invited_pays_an_invoice_and_is_revoked(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url  # the link in the email opens this server
    settings.DEMO_MODE = True  # the sandbox's tokenizer takes cards only in demonstrations
    base = live_server.url
    owner: User = UserFactory.create(
        email="owner@example.com", first_name="Olivia", last_name="Byrne"
    )
    account: Account = AccountFactory.create(owner=owner, company_name="Acme Web Studio")
    invoice = make_invoice(account)
    ServiceFactory(account=account, product_name="Business Hosting")
    DomainFactory(account=account, name="acme-studio.example")
    TicketFactory(account=account, subject="Email bounces")

    owner_context = browser.new_context()
    owner_page = owner_context.new_page()

    # 1. Log in to the Client Area. Some time later, she goes to invite someone.
    log_in(owner_page, base, "owner@example.com")
    time_passes(owner_context)
    shots(owner_page, "owner dashboard")

    # 2. Hello, Olivia! → User Management.
    open_user_menu(owner_page, "Olivia")
    shots(owner_page, "hello menu")
    owner_page.get_by_role("link", name="User Management").click()
    owner_page.get_by_role("heading", name="User Management").wait_for()
    shots(owner_page, "user management")

    # 3. Invite a New User: a sensitive action, so the app asks for the password first.
    owner_page.get_by_role("link", name="Invite a New User").first.click()
    owner_page.get_by_role("heading", name="Confirm your password").wait_for()
    shots(owner_page, "confirm your password")
    assert_accessible(owner_page)
    owner_page.get_by_label("Password").fill(TEST_PASSWORD)
    owner_page.get_by_role("button", name="Confirm").click()
    owner_page.get_by_role("heading", name="Invite a New User").wait_for()
    owner_page.get_by_label("Email address").fill("accountant@example.com")

    # 4. Choose Permissions → View & Pay Invoices.
    owner_page.get_by_label("Choose Permissions", exact=True).check()
    owner_page.get_by_label("View & Pay Invoices").check()
    shots(owner_page, "invite form filled")

    # 5. Send Invite.
    owner_page.get_by_role("button", name="Send Invite").click()
    owner_page.get_by_text("Invitation sent to accountant@example.com.").wait_for()
    assert owner_page.get_by_role("cell", name="accountant@example.com").is_visible()
    shots(owner_page, "invitation pending")

    # The recipient reads the email and opens the link in their own browser.
    link = invitation_link("accountant@example.com")
    assert link.startswith(f"{base}/invitation/")
    invitee_context = browser.new_context()
    page = invitee_context.new_page()
    page.goto(link)
    # The link's token left the address bar (and the history) with the first redirect.
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert page.url == f"{base}/invitation/accept/" and token not in page.content()
    assert page.get_by_role("heading", name="Join Acme Web Studio").is_visible()
    assert page.get_by_text("View & Pay Invoices").first.is_visible()
    shots(page, "invitation link opened")
    assert_accessible(page)
    accept_invitation(page, link, first_name="Aidan", last_name="Walsh")
    shots(page, "joined the account")

    # They see invoices, and no services, domains, tickets or User Management.
    assert main_menu(page) == ["Dashboard", "Billing"]
    open_user_menu(page, "Aidan")
    shots(page, "accountant hello menu")
    menu = page.locator("details.usermenu")
    assert menu.get_by_role("link", name="User Management").count() == 0
    for path in ("/services/", "/domains/", "/support/", "/account/users/"):
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status == 403, path
        assert page.get_by_role("heading", name="You do not have access to this page").is_visible()
    shots(page, "direct url refused")

    # Pay the unpaid invoice with the sandbox card.
    page.goto(f"{base}/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    page.get_by_role("heading", name="Invoices").wait_for()
    shots(page, "invoices")
    page.get_by_role("link", name=f"#{invoice.number}").click()
    # The invoice's own page (the list has a Pay Now of its own, for the same invoice).
    page.wait_for_url(f"{base}/billing/invoices/{invoice.pk}/")
    page.get_by_role("link", name="Pay Now").click()
    page.get_by_label("A new card").check()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry month").select_option(label="12")
    page.get_by_label("Expiry year").select_option(index=3)
    page.get_by_label("Security code (CVC)").fill("123")
    shots(page, "paying by card")
    page.get_by_role("button", name=f"Pay {invoice.balance} {invoice.currency}").click()
    # Not the heading "Invoice #N": role names match as case-blind substrings, so it
    # also matches the pay page's own "Pay invoice #N" and the wait ended before the post.
    page.get_by_text(f"Thank you: invoice #{invoice.number} is paid.").wait_for()
    assert page.get_by_role("heading", name=f"Invoice #{invoice.number} Paid").is_visible()
    shots(page, "invoice paid")
    # The live server shares the in-memory database with this thread: read it only once
    # the page's last request (the tokenizer, the post, its redirect) has been answered.
    page.wait_for_load_state("networkidle")
    close_old_connections()
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert page.get_by_role("cell", name="Aidan Walsh").is_visible()  # "Paid by"

    # 6. The accountant leaves: the owner clicks Revoke Access and confirms.
    owner_page.goto(f"{base}/")
    open_user_menu(owner_page, "Olivia")
    owner_page.get_by_role("link", name="User Management").click()
    row = owner_page.get_by_role("row").filter(has_text="accountant@example.com")
    row.get_by_role("link", name="Revoke Access").click()
    owner_page.get_by_role("heading", name="Revoke Access").wait_for()
    shots(owner_page, "revoke access confirmation")
    assert_accessible(owner_page)
    owner_page.get_by_role("button", name="Revoke Access").click()
    owner_page.get_by_text("Access revoked: accountant@example.com").wait_for()
    shots(owner_page, "access revoked")
    close_old_connections()
    membership = Membership.objects.get(account=account, user__email="accountant@example.com")
    assert membership.status == Membership.Status.REVOKED

    # The accountant's very next click ends on the login or the "access removed" page.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Billing").click()
    # Wait for the page after (the invoice page the click was made on is neither); a load
    # state right after the click could be the invoice page's, and the checks below
    # would then fail, or pass for the wrong page.
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/(login|accounts/access-removed)/"))
    shots(page, "next click after revocation")
    removed = page.get_by_role("heading", name="Your access to that account was removed")
    assert page.url.startswith(f"{base}/login/") or removed.is_visible(), page.url
    assert page.get_by_role("heading", name="Invoices").count() == 0
    assert_accessible(page)

    invitee_context.close()
    owner_context.close()
