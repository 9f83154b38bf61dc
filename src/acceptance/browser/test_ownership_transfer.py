"""The owner transfers the account to the partner, and the partner accepts: by the words
on the page, in two real browsers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import close_old_connections

from acceptance.browser.conftest import Shots, assert_accessible
from acceptance.browser.helpers import confirm_password_if_asked, log_in, open_user_menu
from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.tests.factories import (
    TEST_PASSWORD,
    AccountFactory,
    MembershipFactory,
    UserFactory,
)
from clientarea.billing.tests.factories import make_payment_method
from clientarea.notifications.models import OutboxEmail

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LINK_RE = re.compile(r"https?://\S+/ownership/[A-Za-z0-9_\-]+/")


def transfer_link(email: str) -> str:
    close_old_connections()
    row = (
        OutboxEmail.objects.filter(to_email=email, body_text__contains="/ownership/")
        .order_by("-pk")
        .first()
    )
    assert row is not None, f"no transfer offer queued for {email}"
    match = LINK_RE.search(row.body_text)
    assert match is not None, row.body_text
    return match.group(0)


def test_owner_transfers_the_account_to_the_partner_who_accepts(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url
    base = live_server.url
    owner: User = UserFactory.create(
        email="owner@example.com", first_name="Olivia", last_name="Byrne"
    )
    account: Account = AccountFactory.create(owner=owner, company_name="Acme Web Studio")
    partner: User = UserFactory.create(
        email="partner@example.com", first_name="Pat", last_name="Partner"
    )
    MembershipFactory.create(
        account=account, user=partner, permissions=["profile", "contacts", "invoices"]
    )
    make_payment_method(account)

    # The owner: Hello menu, Transfer Ownership, chooses the partner, stays on.
    owner_context = browser.new_context()
    owner_page = owner_context.new_page()
    log_in(owner_page, base, "owner@example.com")
    open_user_menu(owner_page, "Olivia")
    owner_page.get_by_role("link", name="Transfer Ownership").click()
    transfer_heading = owner_page.get_by_role("heading", name="Transfer Ownership", exact=True)
    confirm_password_if_asked(owner_page, TEST_PASSWORD, otherwise=transfer_heading)
    transfer_heading.wait_for()
    assert_accessible(owner_page)
    owner_page.get_by_label("A sub-account of this account").select_option(
        label="Pat Partner <partner@example.com>"
    )
    owner_page.get_by_label("Stay as a sub-account with All Permissions").check()
    shots(owner_page, "owner chooses the partner")
    owner_page.get_by_role("button", name="Send Transfer Offer").click()
    owner_page.get_by_text("Transfer pending").wait_for()
    owner_page.get_by_role("button", name="Cancel Transfer").wait_for()
    shots(owner_page, "transfer pending")

    # The partner: logs in, opens the link from the email, accepts.
    partner_context = browser.new_context()
    partner_page = partner_context.new_page()
    log_in(partner_page, base, "partner@example.com")
    open_user_menu(partner_page, "Pat")
    assert not partner_page.get_by_role("link", name="Transfer Ownership").is_visible()
    partner_page.goto(transfer_link("partner@example.com"))
    assert "/ownership/accept/" in partner_page.url  # the token left the address bar
    partner_page.get_by_role("heading", name="Become the owner of Acme Web Studio").wait_for()
    assert_accessible(partner_page)
    shots(partner_page, "partner sees the offer")
    partner_page.get_by_role("button", name="Accept Ownership").click()
    partner_page.get_by_text("You are now the owner of Acme Web Studio.").wait_for()
    shots(partner_page, "partner is the owner")
    open_user_menu(partner_page, "Pat")
    partner_page.get_by_role("link", name="Transfer Ownership").wait_for()
    partner_page.get_by_role("link", name="User Management").click()
    # A cell of the users table: the page the click was made on has no table.
    partner_page.get_by_role("cell", name="Olivia Byrne", exact=True).wait_for()
    shots(partner_page, "the former owner is a sub-account")

    close_old_connections()
    account.refresh_from_db()
    assert account.owner_id == partner.pk
    assert not Membership.objects.filter(account=account, user=partner).exists()
    stays = Membership.objects.get(account=account, user=owner)
    assert stays.status == "active" and set(stays.permissions) >= {"invoices", "emails"}
    assert not account.payment_methods.exists()

    # The former owner: still on the account, no longer its owner.
    owner_page.goto(f"{base}/")
    open_user_menu(owner_page, "Olivia")
    assert not owner_page.get_by_role("link", name="Transfer Ownership").is_visible()
    assert not owner_page.get_by_role("link", name="User Management").is_visible()
    shots(owner_page, "former owner menu")
    owner_context.close()
    partner_context.close()
