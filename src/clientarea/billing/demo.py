"""Demo billing data: invoices in every state, a stored sandbox card and some credit."""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from clientarea.core.demo import DemoContext

from . import services
from .gateways import CardDetails
from .totals import LineInput

D = Decimal
VAT = D("23")  # Irish standard VAT rate


def _key() -> str:
    return secrets.token_urlsafe(24)


def load(ctx: DemoContext) -> None:
    today = timezone.localdate()

    def days(n: int) -> timedelta:
        return timedelta(days=n)

    main, other = ctx.main, ctx.other
    card = services.payment_method_add(
        account=main,
        actor=ctx.owner,
        card=CardDetails(
            number="4242424242424242", exp_month=8, exp_year=today.year + 3, cvc="123"
        ),
    )
    services.credit_add(
        account_id=main.pk,
        amount=D("15.00"),
        reason="Goodwill credit for the mail outage",
        actor=ctx.staff,
    )

    paid = services.invoice_create(
        account=main,
        issue_date=today - days(75),
        due_date=today - days(61),
        lines=[
            LineInput("Business Hosting (monthly) - acme-web.ie", D("1"), D("24.99"), VAT),
            LineInput("Domain renewal - acme-web.ie (1 year)", D("1"), D("11.49"), VAT),
        ],
        actor=ctx.staff,
    )
    services.invoice_pay(
        invoice_id=paid.pk,
        account=main,
        payer=ctx.owner,
        source=services.PayWithStoredMethod(payment_method_id=card.pk),
        idempotency_key=_key(),
    )
    paid_by_accountant = services.invoice_create(
        account=main,
        issue_date=today - days(45),
        due_date=today - days(31),
        lines=[LineInput("Business Hosting (monthly) - acme-web.ie", D("1"), D("24.99"), VAT)],
        actor=ctx.staff,
    )
    services.invoice_pay(
        invoice_id=paid_by_accountant.pk,
        account=main,
        payer=ctx.accountant,
        source=services.PayWithStoredMethod(payment_method_id=card.pk),
        idempotency_key=_key(),
    )
    services.invoice_create(
        account=main,
        issue_date=today - days(30),
        due_date=today - days(16),
        lines=[
            LineInput("SSL certificate - shop.acme-web.ie (1 year)", D("1"), D("39.00"), VAT),
            LineInput("Extra mailboxes", D("3"), D("1.75"), VAT),
        ],
        actor=ctx.staff,
    )  # overdue
    cancelled = services.invoice_create(
        account=main,
        issue_date=today - days(20),
        due_date=today - days(6),
        lines=[LineInput("Website migration (ordered twice)", D("1"), D("49.00"), VAT)],
        notes="Duplicate order.",
        actor=ctx.staff,
    )
    services.invoice_cancel(invoice_id=cancelled.pk, actor=ctx.staff)
    services.invoice_create(
        account=main,
        issue_date=today - days(2),
        due_date=today + days(12),
        lines=[
            LineInput("Business Hosting (monthly) - acme-web.ie", D("1"), D("24.99"), VAT),
            LineInput("Daily off-site backups", D("1"), D("4.50"), VAT),
            LineInput("Priority support hours", D("1.5"), D("60.00"), VAT),
        ],
        actor=ctx.staff,
    )  # unpaid

    services.invoice_create(
        account=ctx.second,
        issue_date=today - days(5),
        due_date=today + days(9),
        lines=[LineInput("Starter Hosting (annual) - acme-holdings.ie", D("1"), D("59.00"), VAT)],
        actor=ctx.staff,
    )

    globex_paid = services.invoice_create(
        account=other,
        issue_date=today - days(40),
        due_date=today - days(26),
        lines=[LineInput("VPS 4 GB (monthly) - globex.de", D("1"), D("29.00"), D("19"))],
        actor=ctx.staff,
    )
    services.invoice_pay(
        invoice_id=globex_paid.pk,
        account=other,
        payer=ctx.other_owner,
        source=services.PayWithNewCard(
            card=CardDetails(
                number="5555555555554444", exp_month=3, exp_year=today.year + 2, cvc="321"
            ),
            save=True,
        ),
        idempotency_key=_key(),
    )
    services.invoice_create(
        account=other,
        issue_date=today - days(10),
        due_date=today + days(4),
        lines=[
            LineInput("VPS 4 GB (monthly) - globex.de", D("1"), D("29.00"), D("19")),
            LineInput("Additional IPv4 address", D("2"), D("2.50"), D("19")),
        ],
        actor=ctx.staff,
    )
