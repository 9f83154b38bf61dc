from __future__ import annotations

from typing import Any

import pytest

from acceptance.browser.conftest import Shots, assert_accessible
from clientarea.accounts.tests.factories import TEST_PASSWORD, AccountFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_logs_in_and_finds_the_hello_menu(
    browser: Any, live_server: Any, shots: Shots
) -> None:
    owner = UserFactory(email="owner@example.com", first_name="Olivia")
    AccountFactory(owner=owner, company_name="Acme Web Studio")
    page = browser.new_page()
    page.goto(f"{live_server.url}/login/")
    assert_accessible(page)
    shots(page, "login page")
    page.get_by_label("Email address").fill("owner@example.com")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Hello, Olivia!").click()
    shots(page, "hello menu open")
    # One account: nothing to switch to, so no Switch Account.
    assert page.get_by_role("link", name="Switch Account").count() == 0
    assert page.get_by_role("heading", name="Acme Web Studio").is_visible()
    assert_accessible(page)
    page.close()
