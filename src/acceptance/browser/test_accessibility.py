"""axe-core on the main pages of the client area: no serious or critical violations."""

from __future__ import annotations

from typing import Any

import pytest

from acceptance.browser.conftest import Shots, assert_accessible
from acceptance.browser.helpers import invitation_link, log_in
from clientarea.accounts.models import Account, User
from clientarea.accounts.services import invitation_create
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory, UserFactory
from clientarea.billing.tests.factories import make_invoice
from clientarea.domains.models import Domain
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.models import Service
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.support.models import TicketMessage
from clientarea.support.tests.factories import TicketMessageFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_main_pages_have_no_serious_accessibility_violations(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url
    base = live_server.url
    owner: User = UserFactory.create(
        email="owner@example.com", first_name="Olivia", last_name="Byrne"
    )
    account: Account = AccountFactory.create(owner=owner, company_name="Acme Web Studio")
    member = UserFactory.create(email="sam@example.com", first_name="Sam", last_name="Ryan")
    MembershipFactory.create(account=account, user=member, permissions=["invoices", "tickets"])
    invoice = make_invoice(account)
    service: Service = ServiceFactory.create(account=account, product_name="Business Hosting")
    domain: Domain = DomainFactory.create(account=account, name="acme-studio.example")
    message: TicketMessage = TicketMessageFactory.create(
        ticket__account=account, ticket__subject="Email bounces"
    )
    invitation_create(
        account=account, actor=owner, email="new@example.com", permission_codes=["invoices"]
    )
    link = invitation_link("new@example.com")

    pages = {
        "invitation link": link,
        "login": "/login/",
        "dashboard": "/",
        "user management": "/account/users/",
        "invite form": "/account/users/invite/",
        "invoices": "/billing/",
        "invoice": f"/billing/invoices/{invoice.pk}/",
        "pay invoice": f"/billing/invoices/{invoice.pk}/pay/",
        "services": "/services/",
        "service": f"/services/{service.pk}/",
        "domains": "/domains/",
        "domain": f"/domains/{domain.pk}/",
        "nameservers": f"/domains/{domain.pk}/nameservers/",
        "tickets": "/support/",
        "ticket": f"/support/{message.ticket.pk}/",
        "open ticket": "/support/new/",
        "security": "/security/",
        "emails you receive": "/account/emails/",
        "activity log, a bad filter": "/activity/?date_from=yesterday&action=none",
        "not found": "/no-such-page/",
        # The pages a sub-account meets when the owner did not grant something.
        "sub-account dashboard": "/",
        "forbidden": "/services/",
    }
    context = browser.new_context()
    page = context.new_page()
    failures: list[str] = []
    for name, path in pages.items():
        if name == "dashboard":
            log_in(page, base, "owner@example.com")
        if name == "sub-account dashboard":
            context.close()
            context = browser.new_context()
            page = context.new_page()
            log_in(page, base, "sam@example.com")
        url = path if path.startswith("http") else f"{base}{path}"
        page.goto(url)
        shots(page, name)
        try:
            assert_accessible(page)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    context.close()
    assert failures == []


def test_the_accessibility_check_catches_a_serious_violation(browser: Any) -> None:
    """The check above is not vacuous: an unlabelled field fails it."""
    page = browser.new_page()
    page.set_content(
        '<!doctype html><html lang="en"><head><title>t</title></head>'
        '<body><main><h1>Form</h1><input type="text"></main></body></html>'
    )
    with pytest.raises(AssertionError, match="label"):
        assert_accessible(page)
    page.close()
