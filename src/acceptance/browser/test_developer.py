"""The developer of the help article: reveals and changes a service's control-panel
password and changes a domain's nameservers, on the owner's account."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import close_old_connections

from acceptance.browser.conftest import Shots
from acceptance.browser.helpers import (
    NEW_PASSWORD,
    accept_invitation,
    confirm_password,
    confirm_password_if_asked,
    invitation_link,
    log_in,
    main_menu,
    open_user_menu,
    time_passes,
)
from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.tests.factories import TEST_PASSWORD, AccountFactory, UserFactory
from clientarea.billing.tests.factories import make_invoice
from clientarea.domains.models import Domain
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.models import Service
from clientarea.hosting.tests.factories import SERVICE_PASSWORD, ServiceFactory
from clientarea.notifications.models import OutboxEmail

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PANEL_PASSWORD = "Saffron-Kettle-Meadow-52"


def test_developer_reveals_and_changes_the_panel_password_and_nameservers(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url
    base = live_server.url
    owner: User = UserFactory.create(
        email="owner@example.com", first_name="Olivia", last_name="Byrne"
    )
    account: Account = AccountFactory.create(owner=owner, company_name="Acme Web Studio")
    service: Service = ServiceFactory.create(
        account=account, product_name="Business Hosting", domain="acme-studio.example"
    )
    domain: Domain = DomainFactory.create(account=account, name="acme-studio.example")
    make_invoice(account)

    # The owner invites a developer, starting from the Developer role.
    owner_context = browser.new_context()
    owner_page = owner_context.new_page()
    log_in(owner_page, base, "owner@example.com")
    open_user_menu(owner_page, "Olivia")
    owner_page.get_by_role("link", name="User Management").click()
    owner_page.get_by_role("link", name="Invite a New User").first.click()
    invite_heading = owner_page.get_by_role("heading", name="Invite a New User", exact=True)
    confirm_password_if_asked(owner_page, TEST_PASSWORD, otherwise=invite_heading)
    # The role button posts the form and the same page comes back with its permissions
    # ticked: wait for that page, not for anything the form already shows.
    with owner_page.expect_navigation():
        owner_page.get_by_role("button", name="Developer").click()
    owner_page.get_by_label("Email address").fill("dev@example.com")
    for label in (
        "View & Modify Product Password",
        "Manage Domain Settings",
        "Open & View Support Tickets",
    ):
        assert owner_page.get_by_label(label).is_checked(), label
    assert not owner_page.get_by_label("View & Pay Invoices").is_checked()
    shots(owner_page, "developer preset")
    owner_page.get_by_role("button", name="Send Invite").click()
    owner_page.get_by_text("Invitation sent to dev@example.com.").wait_for()
    owner_context.close()

    context = browser.new_context()
    page = context.new_page()
    accept_invitation(
        page, invitation_link("dev@example.com"), first_name="Dara", last_name="Kelly"
    )
    # Products and domains (implied by the manage permissions) and tickets; no billing.
    assert main_menu(page) == ["Dashboard", "Services", "Domains", "Support"]
    shots(page, "developer dashboard")

    # Later on, the developer opens the service and reveals its password.
    time_passes(context)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Services").click()
    page.get_by_role("link", name="Business Hosting").first.click()
    page.get_by_role("heading", name="Business Hosting").wait_for()
    assert page.get_by_text(SERVICE_PASSWORD).count() == 0
    shots(page, "service password hidden")
    page.get_by_role("button", name="Reveal Password").click()
    # Sensitive: the app asks for the password, then returns to the service.
    confirm_password(page, NEW_PASSWORD)
    page.get_by_role("button", name="Reveal Password").click()
    page.get_by_text(SERVICE_PASSWORD).wait_for()
    shots(page, "service password revealed")

    # Change Password.
    page.get_by_role("link", name="Change Password").click()
    page.get_by_label("New password", exact=True).fill(PANEL_PASSWORD)
    page.get_by_label("Confirm new password").fill(PANEL_PASSWORD)
    shots(page, "change password form")
    page.get_by_role("button", name="Save Changes").click()
    page.get_by_text("The control-panel password of").wait_for()
    assert page.get_by_text(SERVICE_PASSWORD).count() == 0  # hidden again
    shots(page, "service password changed")
    close_old_connections()
    assert Service.objects.get(pk=service.pk).decrypt_password() == PANEL_PASSWORD

    # Domains → the domain → Change Nameservers.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Domains").click()
    page.get_by_role("link", name="acme-studio.example").click()
    page.get_by_role("link", name="Change Nameservers").click()
    page.get_by_label("Nameserver 1").fill("ns1.cloudhost.example")
    page.get_by_label("Nameserver 2").fill("ns2.cloudhost.example")
    shots(page, "nameservers form")
    page.get_by_role("button", name="Change Nameservers").click()
    page.get_by_text("The nameservers of acme-studio.example were saved.").wait_for()
    # Ours (the Nameservers list) and the registry's own view both show the new ones.
    assert page.get_by_role("list").get_by_text("ns1.cloudhost.example").is_visible()
    assert page.get_by_text("ns1.cloudhost.example").count() == 2
    shots(page, "nameservers saved")
    close_old_connections()
    assert Domain.objects.get(pk=domain.pk).nameservers == [
        "ns1.cloudhost.example",
        "ns2.cloudhost.example",
    ]

    # No billing: the menu has no Billing and the page itself refuses.
    response = page.goto(f"{base}/billing/")
    assert response is not None and response.status == 403
    # The owner is told by email of the reveal and the change.
    membership = Membership.objects.get(account=account, user__email="dev@example.com")
    assert membership.status == Membership.Status.ACTIVE
    to_owner = OutboxEmail.objects.filter(to_email="owner@example.com").values_list(
        "subject", flat=True
    )
    assert sorted(s.rsplit(" ", 1)[-1] for s in to_owner if "control-panel password" in s) == [
        "changed",
        "revealed",
    ], list(to_owner)
    context.close()
