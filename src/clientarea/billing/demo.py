"""Demo billing data: invoices in every state, a stored sandbox card and some credit.

The demo loads in one database transaction, where no outside system may be called; so
its card payments are history written as the sandbox answered them: the payment is
recorded as processing, the in-process sandbox (never a real processor: the demo has no
other) is asked directly, and its answer is recorded, as ``services.invoice_pay`` does
outside a transaction.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.accounts.policy import Access, access_for
from clientarea.core.demo import DemoContext

from . import services
from .gateways import SANDBOX
from .models import Invoice, PaymentMethod
from .totals import LineInput

D = Decimal
VAT = D("23")  # Irish standard VAT rate


def _key() -> str:
    return secrets.token_urlsafe(24)


def _access(user: User, account: Account) -> Access:
    """The person's access, as the page they would pay on builds it (the services ask
    the policy themselves)."""
    access = access_for(user, account.pk)
    assert access is not None, f"{user} has no access to {account}"
    return access


def _sandbox_card(
    account: Account, owner: User, name: str, exp_month: int, exp_year: int
) -> PaymentMethod:
    """A card stored as the Add a Card page stores it: the sandbox's token for a test
    card (see gateways.SANDBOX_CARDS), never a number."""
    return services.payment_method_store(
        access=_access(owner, account), token=SANDBOX.test_token(name, exp_month, exp_year)
    )


def _paid_by_card(invoice: Invoice, payer: User, card: PaymentMethod) -> None:
    begun = services.card_payment_begin(
        invoice_id=invoice.pk,
        access=_access(payer, invoice.account),
        source=services.PayWithStoredMethod(payment_method_id=card.pk),
        new_card_token=None,
        idempotency_key=_key(),
    )
    assert not isinstance(begun, services.PaymentOutcome)
    tx, _gateway, token = begun
    answer = SANDBOX.charge(
        amount=tx.amount,
        currency=tx.currency,
        token=token,
        idempotency_key=tx.idempotency_key,
        description=f"INV-{invoice.number}",
    )
    services.card_payment_record(tx.pk, answer)


def _new_card_attempt(invoice: Invoice, payer: User, card_name: str) -> None:
    """A payment with a new card as the pay page makes it: the browser's token for a
    sandbox test card, recorded as processing, the sandbox's answer recorded."""
    today = timezone.localdate()
    token = SANDBOX.test_token(card_name, 11, today.year + 2)
    begun = services.card_payment_begin(
        invoice_id=invoice.pk,
        access=_access(payer, invoice.account),
        source=services.PayWithNewCard(token=token.token),
        new_card_token=token,
        idempotency_key=_key(),
    )
    assert not isinstance(begun, services.PaymentOutcome)
    tx, _gateway, card_token = begun
    answer = SANDBOX.charge(
        amount=tx.amount,
        currency=tx.currency,
        token=card_token,
        idempotency_key=tx.idempotency_key,
        description=f"INV-{invoice.number}",
    )
    services.card_payment_record(tx.pk, answer)


def load(ctx: DemoContext) -> None:
    today = timezone.localdate()

    def days(n: int) -> timedelta:
        return timedelta(days=n)

    main, other = ctx.main, ctx.other
    card = _sandbox_card(
        main,
        ctx.owner,
        "visa",
        8,
        today.year + 3,
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
    _paid_by_card(paid, ctx.owner, card)
    paid_by_accountant = services.invoice_create(
        account=main,
        issue_date=today - days(45),
        due_date=today - days(31),
        lines=[LineInput("Business Hosting (monthly) - acme-web.ie", D("1"), D("24.99"), VAT)],
        actor=ctx.staff,
    )
    _paid_by_card(paid_by_accountant, ctx.accountant, card)
    overdue = services.invoice_create(
        account=main,
        issue_date=today - days(30),
        due_date=today - days(16),
        lines=[
            LineInput("SSL certificate - shop.acme-web.ie (1 year)", D("1"), D("39.00"), VAT),
            LineInput("Extra mailboxes", D("3"), D("1.75"), VAT),
        ],
        actor=ctx.staff,
    )
    # Still overdue: the accountant's card was declined (listed with the bank's reason).
    _new_card_attempt(overdue, ctx.accountant, "insufficient_funds")
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
    globex_card = _sandbox_card(
        other,
        ctx.other_owner,
        "mastercard",
        3,
        today.year + 2,
    )
    _paid_by_card(globex_paid, ctx.other_owner, globex_card)
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
