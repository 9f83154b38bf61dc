"""Card entry in a real browser (issue 14): the card is typed into inputs without a name,
the page's script hands the sandbox's tokenizer only a test card's name and expiry, and the
client area receives a token, never the number or the security code.

Every request the browser makes is recorded (page loads, the script's fetch, the form
posts with their bodies) and searched for the card number, spaced or not, and the CVC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import pytest
from django.db import close_old_connections
from django.utils import timezone

from acceptance.browser.conftest import Shots, assert_accessible
from acceptance.browser.helpers import confirm_password, log_in, time_passes
from clientarea.accounts.models import Account, User
from clientarea.accounts.tests.factories import (
    TEST_PASSWORD,
    AccountFactory,
    MembershipFactory,
    UserFactory,
)
from clientarea.billing import services
from clientarea.billing.models import Invoice, PaymentMethod, Transaction
from clientarea.billing.tests.factories import make_invoice, make_payment_method

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
D = Decimal

VISA = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0002"
NOT_LUHN = "4242 4242 4242 4241"
NOT_A_TEST_CARD = "4111 1111 1111 1111"  # a valid number, but not one of the sandbox's
CVC = "739"
TOKENIZER_PATH = "/billing/sandbox/tokens/"


@dataclass
class Sent:
    method: str
    url: str
    body: str


class NetworkLog:
    """Every request the browser context makes, with its body."""

    def __init__(self, context: Any) -> None:
        self.requests: list[Sent] = []
        context.on("request", self._record)

    def _record(self, request: Any) -> None:
        try:
            body = request.post_data or ""
        except UnicodeDecodeError:  # a binary body: searched as bytes turned to text
            body = (request.post_data_buffer or b"").decode("latin-1")
        self.requests.append(Sent(request.method, request.url, body))

    def to(self, base: str, path: str) -> list[Sent]:
        return [r for r in self.requests if r.url.startswith(f"{base}{path}")]

    def posts(self, base: str) -> list[Sent]:
        return [r for r in self.requests if r.method == "POST" and r.url.startswith(base)]

    def assert_no_card_data(self, base: str, *numbers: str) -> None:
        """No request to the client area carries one of `numbers` (with or without spaces,
        dashes or URL encoding) in its URL or body, nor the CVC as any posted value."""
        to_us = [r for r in self.requests if r.url.startswith(base)]
        assert to_us, "no request was recorded"
        for sent in to_us:
            for where in (sent.url, sent.body):
                flat = re.sub(r"[\s\-]", "", unquote_plus(where))
                for number in numbers:
                    assert number.replace(" ", "") not in flat, (sent.method, sent.url)
            assert CVC not in _posted_values(sent.body), (sent.method, sent.url)
            assert CVC not in [value for _, value in parse_qsl(sent.url.partition("?")[2])]


def _posted_values(body: str) -> list[str]:
    """The values of a form post: URL-encoded or multipart (the script's FormData)."""
    if "Content-Disposition: form-data" in body:
        return [v.strip() for v in re.findall(r'name="[^"]*"\r?\n\r?\n(.*?)\r?\n--', body, re.S)]
    return [value for _, value in parse_qsl(body, keep_blank_values=True)]


def _field_names(body: str) -> set[str]:
    if "Content-Disposition: form-data" in body:
        return set(re.findall(r'name="([^"]*)"', body))
    return {name for name, _ in parse_qsl(body, keep_blank_values=True)}


def _owner_account() -> Account:
    owner: User = UserFactory.create(
        email="owner@example.com", first_name="Olivia", last_name="Byrne"
    )
    return AccountFactory.create(owner=owner, company_name="Acme Web Studio", currency="EUR")


def _card_number_field(page: Any) -> Any:
    return page.get_by_label("Card number")


def _type_card(page: Any, number: str) -> None:
    _card_number_field(page).fill(number)
    page.get_by_label("Expiry month").select_option(label="12")
    page.get_by_label("Expiry year").select_option(index=3)
    page.get_by_label("Security code (CVC)").fill(CVC)


def _expect_card_error(page: Any, message: str) -> None:
    """The card script's message under the card's fields (waited for: it may come from
    the tokenizer's answer)."""
    from playwright.sync_api import expect

    expect(page.locator("[data-card-errors]")).to_have_text(message)


def _pay_button(page: Any) -> Any:
    return page.get_by_role("button", name=re.compile(r"^Pay \d+\.\d\d EUR$"))


def _submit_and_wait(page: Any) -> None:
    with page.expect_navigation():
        _pay_button(page).click()
    page.wait_for_load_state()


def test_paying_and_saving_a_card_never_sends_the_number(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url
    settings.DEMO_MODE = True  # the sandbox's tokenizer exists only then
    base = live_server.url
    account = _owner_account()
    invoice = make_invoice(account)  # 123.00 EUR
    services.credit_add(account_id=account.pk, amount=D("50.00"), reason="x", actor=account.owner)

    context = browser.new_context()
    network = NetworkLog(context)
    page = context.new_page()
    log_in(page, base, "owner@example.com")

    # Add a Card: the owner confirms the password, types the card, sees it listed.
    time_passes(context)  # as if the login was a while ago: the page asks
    page.goto(f"{base}/billing/payment-methods/")
    page.get_by_role("link", name="Add a Card").click()
    confirm_password(page, TEST_PASSWORD)
    page.get_by_role("heading", name="Add a Card").wait_for()
    assert _card_number_field(page).is_visible()  # the page is only for a card
    _type_card(page, VISA)
    shots(page, "add a card")
    with page.expect_navigation():
        page.get_by_role("button", name="Save Card").click()
    page.get_by_text("The Visa ending in 4242 was saved.").wait_for()
    assert page.get_by_role("listitem").filter(has_text="Visa ending in 4242").count() == 1
    shots(page, "card saved")
    close_old_connections()
    assert PaymentMethod.objects.filter(account=account, last4="4242").count() == 1

    # Paying: the stored card is the method chosen by default.
    page.goto(f"{base}/billing/invoices/{invoice.pk}/pay/")
    assert page.get_by_label("Visa ending in 4242").is_checked()

    # Fields follow the method: hidden until "A new card", hidden again for a transfer.
    assert not _card_number_field(page).is_visible()
    assert not page.get_by_label("Save this card for future payments").is_visible()
    page.get_by_label("A new card").check()
    _card_number_field(page).wait_for()
    assert page.get_by_label("Save this card for future payments").is_visible()
    shots(page, "card fields shown")
    assert_accessible(page)
    page.get_by_label("Bank transfer").check()
    _card_number_field(page).wait_for(state="hidden")
    assert not page.get_by_label("Save this card for future payments").is_visible()
    assert not page.locator("noscript").is_visible()  # "needs JavaScript": only without it
    page.get_by_label("A new card").check()

    # The script's own checks: nothing goes to the tokenizer, nothing is posted.
    tokenized_before = len(network.to(base, TOKENIZER_PATH))
    for number, message in (
        (NOT_LUHN, "That card number is not valid: check the digits."),
        (
            NOT_A_TEST_CARD,
            "This is a test (sandbox) gateway: use one of its test card numbers.",
        ),
    ):
        _type_card(page, number)
        posts_before = len(network.posts(base))
        _pay_button(page).click()
        _expect_card_error(page, message)
        assert len(network.to(base, TOKENIZER_PATH)) == tokenized_before
        assert len(network.posts(base)) == posts_before
        shots(page, f"refused by the script {number}")

    # The tokenizer's own refusal is shown in its words (a page left open since last
    # year still offers last year as the expiry year).
    last_year = str(timezone.localdate().year - 1)
    page.get_by_label("Expiry year").evaluate("(s, y) => s.add(new Option(y, y), 1)", last_year)
    _type_card(page, VISA)
    page.get_by_label("Expiry year").select_option(last_year)
    _pay_button(page).click()
    _expect_card_error(page, "This card has expired.")
    assert len(network.to(base, TOKENIZER_PATH)) == tokenized_before + 1
    assert len(network.posts(base)) == posts_before + 1  # the tokenizer only
    tokenized_before += 1

    # Credit first, then a declined card: the credit stays applied and the page says so.
    credit_box = page.get_by_label("Apply my credit balance (50.00 EUR) first")
    assert _pay_button(page).inner_text() == "Pay 123.00 EUR"
    credit_box.check()
    # The button and the methods' heading now say what the card pays: the rest.
    assert _pay_button(page).inner_text() == "Pay 73.00 EUR"
    assert page.get_by_role("group", name="Pay the rest with").count() == 1
    _type_card(page, DECLINED)
    _submit_and_wait(page)
    page.get_by_text(
        "Your credit of 50.00 EUR was applied; Your card was declined by the bank."
    ).wait_for()
    assert "73.00 EUR" in page.locator(".billing-summary .card").first.inner_text()
    shots(page, "credit applied then declined")
    tokenized = network.to(base, TOKENIZER_PATH)[tokenized_before:]
    assert len(tokenized) == 1
    assert _field_names(tokenized[0].body) <= {
        "csrfmiddlewaretoken",
        "_account",
        "card",
        "exp_month",
        "exp_year",
    }
    assert "declined" in _posted_values(tokenized[0].body)

    # The invoice's payment list shows the declined attempt and its reason.
    page.goto(f"{base}/billing/invoices/{invoice.pk}/")
    declined_row = page.get_by_role("row").filter(has_text="Declined")
    assert "Your card was declined by the bank." in declined_row.inner_text()
    assert "Visa ending in 0002" in declined_row.inner_text()
    shots(page, "declined attempt listed")

    # The rest with the test Visa: paid.
    page.get_by_role("link", name="Pay Now").click()
    page.get_by_label("A new card").check()
    _type_card(page, VISA)
    _submit_and_wait(page)
    page.get_by_text(f"Thank you: invoice #{invoice.number} is paid.").wait_for()
    assert page.get_by_role("heading", name=f"Invoice #{invoice.number} Paid").is_visible()
    shots(page, "invoice paid")
    close_old_connections()
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    statuses = sorted(invoice.transactions.values_list("status", flat=True))
    assert statuses == sorted(
        [Transaction.Status.SUCCEEDED, Transaction.Status.DECLINED, Transaction.Status.SUCCEEDED]
    )

    # What was posted to the client area: tokens, never the card.
    assert len(network.to(base, TOKENIZER_PATH)) == 4
    form_posts = [
        r
        for r in network.posts(base)
        if r.url.startswith((f"{base}/billing/invoices/", f"{base}/billing/payment-methods/"))
    ]
    assert len(form_posts) == 3
    for post in form_posts:
        token = dict(parse_qsl(post.body)).get("card_token", "")
        assert token.startswith("tok_sandbox_"), post.body
    network.assert_no_card_data(base, VISA, DECLINED, NOT_LUHN, NOT_A_TEST_CARD)
    context.close()


def test_without_javascript_credit_stored_card_and_transfer_still_pay(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url
    settings.DEMO_MODE = True
    base = live_server.url
    account = _owner_account()
    by_credit, by_card, by_transfer = (make_invoice(account) for _ in range(3))
    services.credit_add(
        account_id=account.pk, amount=by_credit.balance, reason="x", actor=account.owner
    )
    make_payment_method(account)

    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    log_in(page, base, "owner@example.com")

    # Credit covering the whole balance: the method chosen by default.
    page.goto(f"{base}/billing/invoices/{by_credit.pk}/pay/")
    assert page.get_by_label(f"Credit balance ({by_credit.balance} EUR)").is_checked()
    assert not _card_number_field(page).is_visible()
    assert not page.get_by_label("Save this card for future payments").is_visible()
    # (Playwright's text locators skip <noscript>: read the element itself.)
    noscript = page.locator("noscript")
    assert noscript.is_visible()
    assert "Paying with a new card needs JavaScript" in noscript.inner_text()
    shots(page, "no javascript, credit")
    _submit_and_wait(page)
    page.get_by_text(f"Thank you: invoice #{by_credit.number} is paid.").wait_for()

    # A new card: the clear "needs JavaScript" message, nothing charged.
    page.goto(f"{base}/billing/invoices/{by_card.pk}/pay/")
    assert page.get_by_label(re.compile("Credit balance")).count() == 0
    page.get_by_label("A new card").check()
    _submit_and_wait(page)
    page.get_by_role("alert").filter(has_text="the card form needs JavaScript").wait_for()
    shots(page, "no javascript, a new card")
    close_old_connections()
    assert not by_card.transactions.exists()

    # The stored card.
    page.get_by_label("Visa ending in 4242").check()
    _submit_and_wait(page)
    page.get_by_text(f"Thank you: invoice #{by_card.number} is paid.").wait_for()

    # Bank transfer.
    page.goto(f"{base}/billing/invoices/{by_transfer.pk}/pay/")
    page.get_by_label("Bank transfer").check()
    _submit_and_wait(page)
    page.get_by_text("the invoice is marked as awaiting your bank transfer").wait_for()
    shots(page, "no javascript, bank transfer")

    close_old_connections()
    for invoice, status in (
        (by_credit, Invoice.Status.PAID),
        (by_card, Invoice.Status.PAID),
        (by_transfer, Invoice.Status.UNPAID),
    ):
        invoice.refresh_from_db()
        assert invoice.status == status
    by_transfer.refresh_from_db()
    assert by_transfer.awaiting_transfer_since is not None
    context.close()


def test_a_sub_account_pays_with_a_new_card_and_the_owners_stored_card(
    browser: Any, live_server: Any, settings: Any, shots: Shots
) -> None:
    settings.SITE_URL = live_server.url
    settings.DEMO_MODE = True
    base = live_server.url
    account = _owner_account()
    first, second, third = (make_invoice(account) for _ in range(3))
    stored = make_payment_method(account)
    member = UserFactory.create(email="sam@example.com", first_name="Sam", last_name="Ryan")
    MembershipFactory.create(account=account, user=member, permissions=["invoices"])

    context = browser.new_context()
    network = NetworkLog(context)
    page = context.new_page()
    log_in(page, base, "sam@example.com")

    page.goto(f"{base}/billing/invoices/{first.pk}/pay/")
    page.get_by_label("A new card").check()
    _card_number_field(page).wait_for()
    assert page.get_by_label("Save this card for future payments").count() == 0
    _type_card(page, VISA)
    shots(page, "sub-account, a new card")
    _submit_and_wait(page)
    page.get_by_text(f"Thank you: invoice #{first.number} is paid.").wait_for()

    # The owner's card, shown by brand and last four only (no expiry).
    page.goto(f"{base}/billing/invoices/{second.pk}/pay/")
    option = page.get_by_label("Visa ending in 4242", exact=True)
    assert option.count() == 1
    method_group = page.get_by_role("group", name="Pay with").inner_text()
    assert f"{stored.exp_year}" not in method_group
    option.check()
    shots(page, "sub-account, the owner's card")
    _submit_and_wait(page)
    page.get_by_text(f"Thank you: invoice #{second.number} is paid.").wait_for()

    # Signed out meanwhile (another tab): the tokenizer answers with the login page,
    # not JSON; the script says the card could not be checked, and posts nothing.
    page.goto(f"{base}/billing/invoices/{third.pk}/pay/")
    page.get_by_label("A new card").check()
    _type_card(page, VISA)
    context.clear_cookies(name="sessionid")
    posts_before = len(network.posts(base))
    _pay_button(page).click()
    _expect_card_error(page, "The card could not be checked: try again.")
    assert len(network.posts(base)) == posts_before + 1  # the tokenizer only
    shots(page, "signed out meanwhile")

    close_old_connections()
    for invoice, status in (
        (first, Invoice.Status.PAID),
        (second, Invoice.Status.PAID),
        (third, Invoice.Status.UNPAID),
    ):
        invoice.refresh_from_db()
        assert invoice.status == status
    assert PaymentMethod.objects.filter(account=account).count() == 1  # nothing saved
    assert len(network.to(base, TOKENIZER_PATH)) == 2
    network.assert_no_card_data(base, VISA)
    context.close()
