"""No card number or CVC is ever stored or logged: look at every column of every row and
at every log record (SQL included) after adding a card and paying with new cards."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

import pytest
from django.apps import apps
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, Membership

from .factories import make_invoice

pytestmark = pytest.mark.django_db

NUMBERS = ("4242424242424242", "5555555555554444", "4000000000000002", "4000000000000119")
CVC = "739"  # checked as a whole word, so hex tokens cannot collide by chance


def leaks(text: str) -> list[str]:
    digits = re.sub(r"[\s-]", "", text)
    found = [n for n in NUMBERS if n in digits or n[:12] in digits]
    if re.search(rf"\b{CVC}\b", text):
        found.append("cvc")
    return found


def test_card_numbers_and_cvc_are_in_no_column_and_no_log(
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    year = str(timezone.localdate().year + 2)
    owner = login_client(account.owner, account)
    accountant = login_client(member_factory("invoices").user, account)
    with CaptureQueriesContext(connection) as queries:
        owner.post(
            reverse("billing:payment_method_add"),
            {"card_number": "5555 5555 5555 4444", "exp_month": "4", "exp_year": year, "cvc": CVC},
        )
        for number, client in zip(NUMBERS, (owner, accountant, owner, accountant), strict=True):
            invoice = make_invoice(account)
            url = reverse("billing:invoice_pay", args=[invoice.pk])
            key = client.get(url).context["form"]["idempotency_key"].value()
            client.post(
                url,
                {
                    "method": "new_card",
                    "card_number": number,
                    "exp_month": "4",
                    "exp_year": year,
                    "cvc": CVC,
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
    from clientarea.billing.models import PaymentMethod, Transaction

    assert PaymentMethod.objects.count() == 2  # added + saved while paying (owner only)
    assert Transaction.objects.filter(status="succeeded").count() == 2
    assert Transaction.objects.filter(status="failed").count() == 1


def test_card_details_mask_themselves() -> None:
    from .factories import card

    details = card()
    assert "4242424242424242" not in repr(details) and CVC not in repr(details)
    assert "4242" in repr(details)
