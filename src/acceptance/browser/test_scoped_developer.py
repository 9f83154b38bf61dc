"""A web developer hired for one website: the owner invites them limited to that
website's hosting and domain; they see only those, reveal the hosting's password, and
the account's other service is a 404 to them."""

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
    open_user_menu,
    time_passes,
)
from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.tests.factories import TEST_PASSWORD, AccountFactory, UserFactory
from clientarea.domains.models import Domain
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.models import Service
from clientarea.hosting.tests.factories import SERVICE_PASSWORD, ServiceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_invites_a_developer_limited_to_one_website(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url
    base = live_server.url
    owner: User = UserFactory.create(
        email="owner@example.com", first_name="Olivia", last_name="Byrne"
    )
    account: Account = AccountFactory.create(owner=owner, company_name="Acme Web Studio")
    website: Service = ServiceFactory.create(
        account=account, product_name="Business Hosting", domain="acme-studio.example"
    )
    other: Service = ServiceFactory.create(
        account=account, product_name="Shop Hosting", domain="acme-shop.example"
    )
    DomainFactory.create(account=account, name="acme-studio.example")
    other_domain: Domain = DomainFactory.create(account=account, name="acme-shop.example")

    # The owner: Invite a New User, Only these (the website's hosting and domain), then
    # the Developer role, which keeps that choice.
    owner_context = browser.new_context()
    page = owner_context.new_page()
    log_in(page, base, "owner@example.com")
    open_user_menu(page, "Olivia")
    page.get_by_role("link", name="User Management").click()
    page.get_by_role("link", name="Invite a New User").first.click()
    invite_heading = page.get_by_role("heading", name="Invite a New User", exact=True)
    confirm_password_if_asked(page, TEST_PASSWORD, otherwise=invite_heading)
    page.get_by_label("Email address").fill("webdev@example.com")
    page.get_by_text("Invoices, contacts and the account profile are account-wide").wait_for()
    page.get_by_label("Only these", exact=True).check()
    page.get_by_label("Business Hosting (acme-studio.example)").check()
    page.get_by_label("acme-studio.example", exact=True).check()
    # The role button posts the form and the same page comes back: its heading is on both,
    # so wait for the navigation itself (else the checks below could read the old form,
    # where the choices just made are ticked as well).
    with page.expect_navigation():
        page.get_by_role("button", name="Developer").click()
    assert page.get_by_label("View & Modify Product Password").is_checked()
    assert page.get_by_label("Only these", exact=True).is_checked()
    assert page.get_by_label("Business Hosting (acme-studio.example)").is_checked()
    assert not page.get_by_label("Shop Hosting (acme-shop.example)").is_checked()
    assert page.get_by_label("acme-studio.example", exact=True).is_checked()
    assert page.get_by_label("Email address").input_value() == "webdev@example.com"
    shots(page, "invite limited to one website")
    page.get_by_role("button", name="Send Invite").click()
    page.get_by_text("Invitation sent to webdev@example.com.").wait_for()
    invitations = page.get_by_role("row", name="webdev@example.com")
    assert "Business Hosting (acme-studio.example)" in invitations.inner_text()
    assert "Shop Hosting" not in invitations.inner_text()
    shots(page, "user management shows the scope")
    owner_context.close()

    # The developer accepts: the invitation says what it is limited to.
    context = browser.new_context()
    dev = context.new_page()
    dev.goto(invitation_link("webdev@example.com"))
    dev.get_by_text("Business Hosting (acme-studio.example)").first.wait_for()
    assert dev.get_by_text("Shop Hosting").count() == 0
    accept_invitation(
        dev, invitation_link("webdev@example.com"), first_name="Wes", last_name="Webb"
    )
    shots(dev, "developer dashboard")

    # Only the website's hosting and domain are listed.
    dev.get_by_role("navigation", name="Main").get_by_role("link", name="Services").click()
    # The list's own heading: a dashboard item can link to the service too, and the check
    # below would pass on the dashboard.
    dev.get_by_role("heading", name="Products & Services", exact=True).wait_for()
    dev.get_by_role("link", name="Business Hosting").first.wait_for()
    assert dev.get_by_text("Shop Hosting").count() == 0
    shots(dev, "only the website's service")
    dev.get_by_role("navigation", name="Main").get_by_role("link", name="Domains").click()
    dev.get_by_role("heading", name="My Domains", exact=True).wait_for()
    dev.get_by_role("link", name="acme-studio.example").wait_for()
    assert dev.get_by_text("acme-shop.example").count() == 0

    # They reveal the website's control-panel password.
    time_passes(context)
    dev.get_by_role("navigation", name="Main").get_by_role("link", name="Services").click()
    dev.get_by_role("link", name="Business Hosting").first.click()
    dev.get_by_role("button", name="Reveal Password").click()
    confirm_password(dev, NEW_PASSWORD)
    dev.get_by_role("button", name="Reveal Password").click()
    dev.get_by_text(SERVICE_PASSWORD).wait_for()
    shots(dev, "password revealed")

    # The other service and domain of the account: 404, as if they did not exist.
    for url in (
        f"{base}/services/{other.pk}/",
        f"{base}/domains/{other_domain.pk}/",
    ):
        response = dev.goto(url)
        assert response is not None and response.status == 404, url
    shots(dev, "the other service is not found")
    close_old_connections()
    membership = Membership.objects.get(account=account, user__email="webdev@example.com")
    assert membership.scope_items == {
        "service": frozenset({website.pk}),
        "domain": frozenset(
            Domain.objects.filter(name="acme-studio.example").values_list("pk", flat=True)
        ),
    }
    context.close()
