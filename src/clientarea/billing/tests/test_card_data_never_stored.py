"""No card number or security code ever reaches the client area.

The card's inputs on the pay and Add a Card pages carry no ``name``, so the browser never
posts them; the page's script hands the card to the processor (the sandbox's tokenizer
takes a test card's name and expiry, never a number) and posts only the token. Even a
hand-made post with card fields charges and stores nothing. And after the whole flow,
no column of any row, no SQL statement and no log record holds a card number or CVC."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from clientarea.accounts.models import Account, Membership
from clientarea.billing.models import PaymentMethod, Transaction

from .factories import make_invoice

pytestmark = pytest.mark.django_db

NUMBERS = ("4242424242424242", "5555555555554444", "4000000000000002", "4000000000000119")
CVC = "739"  # checked as a whole word, so hex tokens cannot collide by chance
SANDBOX_NAMES = {
    "4242424242424242": "visa",
    "5555555555554444": "mastercard",
    "4000000000000002": "declined",
    "4000000000000119": "processing_error",
}


def leaks(text: str) -> list[str]:
    digits = re.sub(r"[\s-]", "", text)
    found = [n for n in NUMBERS if n in digits or n[:12] in digits]
    if re.search(rf"\b{CVC}\b", text):
        found.append("cvc")
    return found


class _Inputs(HTMLParser):
    """Every input and select of a page, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.fields: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("input", "select"):
            self.fields.append(dict(attrs))


def _card_inputs(html: str) -> list[dict[str, str | None]]:
    parser = _Inputs()
    parser.feed(html)
    return [f for f in parser.fields if (f.get("autocomplete") or "").startswith("cc-")]


def _tokenize(client: Client, number: str, year: str) -> str:
    """What the page's script does: the test card's name and expiry to the tokenizer."""
    answer = client.post(
        reverse("billing:sandbox_tokenize"),
        {"card": SANDBOX_NAMES[number], "exp_month": "4", "exp_year": year},
    )
    assert answer.status_code == 200, answer.content
    token: str = answer.json()["id"]
    return token


def test_the_card_inputs_have_no_name_so_no_form_post_carries_them(
    account: Account, login_client: Callable[..., Client]
) -> None:
    owner = login_client(account.owner, account)
    invoice = make_invoice(account)
    for url in (
        reverse("billing:invoice_pay", args=[invoice.pk]),
        reverse("billing:payment_method_add"),
    ):
        html = owner.get(url).content.decode()
        inputs = _card_inputs(html)
        assert {f.get("autocomplete") for f in inputs} == {
            "cc-number",
            "cc-exp-month",
            "cc-exp-year",
            "cc-csc",
        }, url
        assert [f for f in inputs if f.get("name")] == [], url
        assert 'name="card_token"' in html


def test_a_hand_made_post_with_card_fields_charges_and_stores_nothing(
    account: Account, login_client: Callable[..., Client]
) -> None:
    owner = login_client(account.owner, account)
    invoice = make_invoice(account)
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    key = owner.get(url).context["form"]["idempotency_key"].value()
    year = str(timezone.localdate().year + 2)
    card = {"card_number": NUMBERS[0], "exp_month": "4", "exp_year": year, "cvc": CVC}
    response = owner.post(url, {"method": "new_card", "idempotency_key": key, **card})
    assert response.status_code == 200
    assert "needs JavaScript" in response.content.decode()
    assert not Transaction.objects.exists()
    owner.post(reverse("billing:payment_method_add"), card)
    assert not PaymentMethod.objects.exists()


def test_the_tokenizer_takes_no_card_number_and_exists_only_in_demonstrations(
    account: Account, login_client: Callable[..., Client], settings: SettingsWrapper
) -> None:
    owner = login_client(account.owner, account)
    year = str(timezone.localdate().year + 2)
    url = reverse("billing:sandbox_tokenize")
    settings.DEMO_MODE = False
    assert owner.post(url, {"card": "visa", "exp_month": "4", "exp_year": year}).status_code == 404
    settings.DEMO_MODE = True
    # A number where the card's name belongs is refused, not read.
    refused = owner.post(url, {"card": NUMBERS[0], "exp_month": "4", "exp_year": year})
    assert refused.status_code == 400
    assert "test card" in refused.json()["error"]
    expired = owner.post(url, {"card": "visa", "exp_month": "1", "exp_year": "2001"})
    assert expired.status_code == 400 and "expired" in expired.json()["error"]
    assert owner.get(url).status_code == 405
    # Stripe takes the cards: the sandbox's tokenizer is gone.
    settings.BILLING_CARD_GATEWAY = "stripe"
    assert owner.post(url, {"card": "visa", "exp_month": "4", "exp_year": year}).status_code == 404


def test_a_forged_token_is_refused_and_charges_nothing(
    account: Account, login_client: Callable[..., Client], settings: SettingsWrapper
) -> None:
    settings.DEMO_MODE = True
    owner = login_client(account.owner, account)
    invoice = make_invoice(account)
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    token = _tokenize(owner, NUMBERS[0], str(timezone.localdate().year + 2))
    for forged in ("tok_sandbox_visa.12.2030.00:forged", token[:-2] + "xx", "pm_123", "x" * 101):
        key = owner.get(url).context["form"]["idempotency_key"].value()
        response = owner.post(
            url, {"method": "new_card", "card_token": forged, "idempotency_key": key}
        )
        assert response.status_code == 200
        assert "enter it again" in response.content.decode().lower() or (
            "card details again" in response.content.decode()
        ), forged
    assert not Transaction.objects.exists()


def test_card_numbers_and_cvc_are_in_no_column_no_query_and_no_log(
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
    settings: SettingsWrapper,
) -> None:
    settings.DEMO_MODE = True
    caplog.set_level(logging.DEBUG)
    year = str(timezone.localdate().year + 2)
    owner = login_client(account.owner, account)
    accountant = login_client(member_factory("invoices").user, account)
    with CaptureQueriesContext(connection) as queries:
        owner.post(
            reverse("billing:payment_method_add"),
            {"card_token": _tokenize(owner, "5555555555554444", year)},
        )
        for number, client in zip(NUMBERS, (owner, accountant, owner, accountant), strict=True):
            invoice = make_invoice(account)
            url = reverse("billing:invoice_pay", args=[invoice.pk])
            key = client.get(url).context["form"]["idempotency_key"].value()
            client.post(
                url,
                {
                    "method": "new_card",
                    "card_token": _tokenize(client, number, year),
                    "idempotency_key": key,
                    "save_card": "on",
                },
            )
    stored = []
    for model in apps.get_models():
        for row in model._base_manager.all().values_list():
            for value in row:
                if value is not None and leaks(str(value)):
                    stored.append((model.__name__, value))
    assert stored == []
    assert [q["sql"] for q in queries.captured_queries if leaks(q["sql"])] == []
    assert [r.getMessage() for r in caplog.records if leaks(r.getMessage())] == []
    # Sanity: the flow really ran (cards stored, payments made).
    assert PaymentMethod.objects.count() == 2  # added + saved while paying (owner only)
    assert Transaction.objects.filter(status="succeeded").count() == 2
    assert Transaction.objects.filter(status="declined").count() == 1
    assert Transaction.objects.filter(status="failed").count() == 1
