"""Reads that several billing views share. Every query is scoped to one account."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import DecimalField, ExpressionWrapper, F, QuerySet, Sum
from django.utils import timezone

from clientarea.accounts.models import Account

from .models import ZERO, Invoice, PaymentMethod, Transaction

STATUS_FILTERS = dict(Invoice.DISPLAY_STATUSES)
COMBINED_PREFIX = "billing.invoice:"  # services.COMBINED_ITEM's lines


def invoice_list_for(*, account: Account, status: str | None = None) -> QuerySet[Invoice]:
    """The account's invoices, newest first, optionally by (displayed) status.

    "Unpaid" lists every invoice with money due, overdue ones included; "Overdue" only
    those past their due date.
    """
    qs = Invoice.objects.filter(account=account).order_by("-issue_date", "-number")
    today = timezone.localdate()
    if status == Invoice.OVERDUE:
        qs = qs.filter(status=Invoice.Status.UNPAID, due_date__lt=today)
    elif status in Invoice.Status.values:
        qs = qs.filter(status=status)
    return qs


def unpaid_invoices(account: Account) -> QuerySet[Invoice]:
    """The account's unpaid invoices, each counted once: a combined invoice (Pay several
    at once) only pays others that are listed themselves, so it is left out."""
    return Invoice.objects.filter(account=account, status=Invoice.Status.UNPAID).exclude(
        lines__item__startswith=COMBINED_PREFIX
    )


def invoice_unpaid_total(*, account: Account) -> Decimal:
    balance = ExpressionWrapper(
        F("total") - F("amount_paid"), output_field=DecimalField(max_digits=12, decimal_places=2)
    )
    result = unpaid_invoices(account).aggregate(due=Sum(balance))["due"]
    return Decimal(result or ZERO).quantize(Decimal("0.01"))


def invoice_unpaid_count(account: Account) -> int:
    return unpaid_invoices(account).count()


def payment_methods_for(*, account: Account) -> QuerySet[PaymentMethod]:
    return PaymentMethod.objects.filter(account=account).order_by("created_at", "pk")


def transactions_for_invoice(*, invoice: Invoice) -> QuerySet[Transaction]:
    return (
        Transaction.objects.filter(invoice=invoice)
        .select_related("payer")
        .order_by("created_at", "pk")
    )


def processing_payment_for(*, invoice: Invoice) -> Transaction | None:
    """The invoice's card payment sent to the processor and not confirmed yet, if any
    (not a card refund being processed: see ``refunds``)."""
    return Transaction.objects.filter(
        invoice=invoice, kind=Transaction.Kind.PAYMENT, status=Transaction.Status.PROCESSING
    ).first()


def payment_by_reference(*, invoice: Invoice, reference: str) -> Transaction | None:
    """This invoice's payment known to the card processor as `reference` (its id of it)."""
    if not reference or not reference.isascii() or not reference.isprintable():
        return None
    return (
        Transaction.objects.filter(
            invoice=invoice, kind=Transaction.Kind.PAYMENT, reference=reference
        )
        .order_by("-pk")
        .first()
    )
