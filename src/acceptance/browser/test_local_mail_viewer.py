"""A newcomer to the project runs the demo (`make run`: DEMO_MODE) and wants to see an
invitation work: the owner invites someone, the worker sends the email, and staff open it
in the back office's local mail viewer and follow its link in one click, then join."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.db import close_old_connections

from acceptance.browser.conftest import Shots
from acceptance.browser.helpers import NEW_PASSWORD
from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.services import invitation_create
from clientarea.accounts.tests.factories import TEST_PASSWORD, AccountFactory, UserFactory
from clientarea.notifications.services import outbox_deliver_due

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_open_a_sent_invitation_from_the_local_mail_viewer(
    browser: Any, live_server: Any, settings: Any, shots: Shots, tmp_path: Path
) -> None:
    settings.SITE_URL = live_server.url
    settings.DEMO_MODE = True
    settings.EMAIL_BACKEND = "clientarea.notifications.demo_mail.DemoMailBackend"
    settings.DEMO_MAIL_DIR = tmp_path / "demo-mail"
    base = live_server.url
    owner: User = UserFactory.create(email="owner@example.com", first_name="Olivia")
    account: Account = AccountFactory.create(owner=owner, company_name="Acme Web Studio")
    UserFactory.create(email="staff@example.com", is_staff=True, is_superuser=True)
    invitation_create(
        account=account,
        actor=owner,
        email="bookkeeper@example.com",
        permission_codes=["invoices"],
    )
    assert outbox_deliver_due()["sent"] == 1  # the worker

    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/admin/login/")
    page.get_by_label("Email address").fill("staff@example.com")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    # The back office's index: the login page has a "Local mail viewer" link of its own
    # (the demo banner), and a click there would race the login.
    page.wait_for_url(f"{base}/admin/")
    page.get_by_role("link", name="Local mail viewer").click()
    page.get_by_role("heading", name="Local mail viewer").wait_for()
    shots(page, "the local mail viewer")
    row = page.get_by_role("row", name=re.compile("bookkeeper@example.com"))
    assert "Sent" in row.inner_text()
    row.get_by_role("link").click()
    shots(page, "the invitation as sent")
    # One click on the link in the email opens the invitation. The newcomer plays the
    # invited person in a browser of their own (staff are logged in here).
    link = page.get_by_role("link", name=re.compile(r"^http.+invitation.+[A-Za-z0-9]"))
    href = link.get_attribute("href")
    assert href is not None and href.startswith(base)
    link.click()
    # The token left the address bar at once. (Waited for by address: a load state right
    # after the click could be the email's page.)
    page.wait_for_url(re.compile(r"/invitation/accept/"))
    shots(page, "the link opened by staff")
    context.close()
    context = browser.new_context()
    page = context.new_page()
    page.goto(href)
    page.get_by_label("First name").fill("Bea")
    page.get_by_label("Last name").fill("Keeper")
    page.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Password (again)").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Create Password and Join").click()
    page.get_by_text("Welcome! You now have access to").wait_for()
    shots(page, "joined")
    close_old_connections()
    assert Membership.objects.filter(account=account, user__email="bookkeeper@example.com").exists()
    context.close()
