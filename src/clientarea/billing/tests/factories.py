from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.accounts.tests.factories import access_of
from clientarea.billing import services
from clientarea.billing.gateways import SANDBOX, SANDBOX_CARDS
from clientarea.billing.models import Invoice, PaymentMethod
from clientarea.billing.totals import LineInput

TEST_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
ERROR_CARD = "4000000000000119"
TEST_CVC = "739"


def card(number: str = TEST_CARD, *, exp_month: int = 12, exp_year: int | None = None) -> str:
    """The token the sandbox's tokenizer gives the pay page's script for the test card
    `number` (what the browser posts instead of the card)."""
    name = next(name for name, c in SANDBOX_CARDS.items() if c.number == number)
    year = exp_year if exp_year is not None else timezone.localdate().year + 2
    return SANDBOX.test_token(name, exp_month, year).token


def make_invoice(
    account: Account,
    *,
    lines: list[LineInput] | None = None,
    due_in_days: int = 14,
    issue_date: datetime.date | None = None,
    **kwargs: Any,
) -> Invoice:
    """An invoice issued through the service (number, totals and email as in real life)."""
    issue = issue_date or timezone.localdate()
    return services.invoice_create(
        account=account,
        lines=lines
        or [
            LineInput("Business Hosting (monthly)", Decimal("1"), Decimal("100.00"), Decimal("23"))
        ],
        issue_date=issue,
        due_date=issue + datetime.timedelta(days=due_in_days),
        **kwargs,
    )


def make_payment_method(account: Account, number: str = TEST_CARD) -> PaymentMethod:
    saved = services.payment_method_add(
        access=access_of(account.owner, account), token=card(number)
    )
    assert saved.method is not None
    return saved.method


def owner_of(account: Account) -> User:
    return account.owner
