"""A person makes an API token from the Hello menu, copies it once, and a script uses it;
the API's docs page runs under the site's Content-Security-Policy with no violation."""

from __future__ import annotations

from typing import Any

import pytest

from acceptance.browser.conftest import Shots, assert_accessible
from clientarea.accounts.tests.factories import TEST_PASSWORD, AccountFactory, UserFactory
from clientarea.billing.tests.factories import make_invoice

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_creates_a_token_and_reads_the_docs(
    browser: Any, live_server: Any, shots: Shots
) -> None:
    owner = UserFactory(email="owner@example.com", first_name="Olivia")
    account = AccountFactory(owner=owner, company_name="Acme Web Studio")
    invoice = make_invoice(account)
    page = browser.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email address").fill("owner@example.com")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text("Hello, Olivia!").click()
    page.get_by_role("link", name="API Tokens").click()
    # Waited for: right after the click the list may not be loaded yet.
    page.get_by_role("heading", name="API Tokens", exact=True).wait_for()
    page.get_by_role("link", name="Create Token").first.click()
    page.get_by_label("Name", exact=True).fill("Accounting export")
    page.get_by_role("checkbox", name="View & Pay Invoices").check()
    assert_accessible(page)
    shots(page, "create token")
    page.get_by_role("button", name="Create Token").click()
    secret = page.get_by_label("Token", exact=True).input_value()
    assert secret.startswith("ca_pat_")
    shots(page, "token shown once")
    page.get_by_role("link", name="Done").click()
    # The list's heading, not the token's name: the page that shows the token names it too
    # (and holds the secret), so the checks below could have read that page.
    page.get_by_role("heading", name="API Tokens", exact=True).wait_for()
    assert page.get_by_text("Accounting export").is_visible()
    assert secret not in page.content()

    page.goto(f"{live_server.url}/api/v1/docs")
    page.get_by_text("/api/v1/invoices/{id}").first.wait_for()
    shots(page, "api docs")
    status = page.evaluate(
        """async ([secret, id]) => {
            const r = await fetch('/api/v1/invoices/' + id,
                                  {headers: {Authorization: 'Bearer ' + secret}});
            return [r.status, (await r.json()).number];
        }""",
        [secret, invoice.pk],
    )
    assert status == [200, invoice.number]
    assert violations == []
    page.close()
