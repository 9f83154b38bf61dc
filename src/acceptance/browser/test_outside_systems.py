"""A developer with View & Modify Product Password and Manage Domain Settings, in demo
mode: the banner says the panel and registry are stand-ins; Log in to cPanel is a POST
that opens the panel (the demo page here) and is recorded; a nameserver change the
registry does not answer shows as pending, never as made, until the worker settles it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.utils import timezone

from acceptance.browser.conftest import Shots, assert_accessible
from acceptance.browser.helpers import confirm_password_if_asked, log_in
from clientarea.accounts.models import Account, User
from clientarea.accounts.tests.factories import (
    TEST_PASSWORD,
    AccountFactory,
    MembershipFactory,
    UserFactory,
)
from clientarea.audit.models import AuditEvent
from clientarea.core.models import PendingChange
from clientarea.core.outside import pending_changes_reconcile_due
from clientarea.domains.models import Domain
from clientarea.domains.tests.conftest import RecordingRegistrar
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.tests.factories import ServiceFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_developer_logs_in_to_cpanel_and_sees_a_pending_nameserver_change(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url
    settings.DEMO_MODE = True
    settings.DOMAINS_REGISTRAR_DRIVER = "clientarea.domains.tests.conftest.RecordingRegistrar"
    RecordingRegistrar.reset()
    cache.clear()
    base = live_server.url
    owner: User = UserFactory.create(email="owner@example.com", first_name="Olivia")
    account: Account = AccountFactory.create(owner=owner, company_name="Acme Web Studio")
    service = ServiceFactory.create(account=account, product_name="Business Hosting")
    domain: Domain = DomainFactory.create(account=account, name="acme-studio.example")
    developer = UserFactory.create(email="dev@example.com", first_name="Dara")
    MembershipFactory.create(
        account=account, user=developer, permissions=["manageproducts", "managedomains"]
    )

    context = browser.new_context()
    page = context.new_page()
    log_in(page, base, "dev@example.com")
    assert "Demo mode" in page.locator(".demo-banner").inner_text()

    page.goto(f"{base}/services/{service.pk}/")
    page.get_by_text("Disk space").wait_for()  # the panel's usage
    shots(page, "service page with usage")
    assert_accessible(page)
    page.get_by_role("button", name="Log in to cPanel").click()
    panel = page.get_by_role("heading", name="Control panel (demo)", exact=True)
    if confirm_password_if_asked(page, TEST_PASSWORD, otherwise=panel):
        page.get_by_role("button", name="Log in to cPanel").click()
    panel.wait_for()
    shots(page, "single sign-on lands on the demo panel")
    assert AuditEvent.objects.filter(action="service.panel_login", actor=developer).count() == 1

    # The registry takes the change but its answer never arrives.
    RecordingRegistrar.uncertain = 99
    page.goto(f"{base}/domains/{domain.pk}/")
    page.get_by_role("link", name="Change Nameservers").click()
    page.get_by_label("Nameserver 1").fill("ns1.newdns.example")
    page.get_by_label("Nameserver 2").fill("ns2.newdns.example")
    page.get_by_role("button", name="Change Nameservers").click()
    page.get_by_text("has not confirmed the new nameservers").wait_for()
    assert "were saved" not in page.content()
    assert page.get_by_role("link", name="Change Nameservers").count() == 0
    shots(page, "nameserver change pending")

    # Minutes later the worker asks the registry (domain:info) and records what it holds.
    RecordingRegistrar.uncertain = 0
    PendingChange.objects.update(next_check_at=timezone.now() - timedelta(seconds=1))
    assert pending_changes_reconcile_due()["done"] == 1
    cache.clear()
    page.reload()
    page.get_by_text("ns1.newdns.example").first.wait_for()
    assert "pending" not in page.locator("main").inner_text()
    shots(page, "nameserver change made")
    context.close()
    RecordingRegistrar.reset()
