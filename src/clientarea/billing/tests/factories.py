from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.billing import services
from clientarea.billing.gateways import CardDetails
from clientarea.billing.models import Invoice, PaymentMethod
from clientarea.billing.totals import LineInput

TEST_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
ERROR_CARD = "4000000000000119"
TEST_CVC = "739"


def card(number: str = TEST_CARD, cvc: str = TEST_CVC) -> CardDetails:
    return CardDetails(number=number, exp_month=12, exp_year=timezone.localdate().year + 2, cvc=cvc)


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
    return services.payment_method_add(account=account, actor=account.owner, card=card(number))


def owner_of(account: Account) -> User:
    return account.owner
