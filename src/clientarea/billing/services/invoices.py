"""Invoices issued (numbered under the counter's row lock), cancelled and refunded by
staff (to the credit balance, or marked as returned outside the client area; card refunds
through the processor are ``clientarea.billing.refunds``)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence

from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Replace
from django.http import HttpRequest
from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.audit.services import audit_record
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import notify

from .. import gateways
from ..models import ZERO, CreditEntry, Invoice, InvoiceCounter, InvoiceLine, Transaction
from ..totals import LineInput, invoice_totals
from ._common import (
    INVOICE_EMAIL_KIND,
    _end_awaited_transfers,
    _invoice_paid,
    _invoice_url,
    _lock_account,
    _lock_invoice,
    _processing_payment,
    _release_combined,
)
from .outcomes import BillingError


def _take_number() -> int:
    """The next invoice number: one ``UPDATE ... RETURNING`` of the counter row, which
    locks that row until this transaction ends (see InvoiceCounter). Called last.
    (An SQLite older than 3.35 has no RETURNING: the UPDATE, then a read of the row this
    transaction now holds.)"""
    table = connection.ops.quote_name(InvoiceCounter._meta.db_table)
    update = f"UPDATE {table} SET last_number = last_number + 1 WHERE id = 1"  # noqa: S608
    returning = connection.features.can_return_columns_from_insert
    with connection.cursor() as cursor:
        for _ in range(2):
            if returning:
                cursor.execute(f"{update} RETURNING last_number")
                row = cursor.fetchone()
            else:
                cursor.execute(update)
                row = None
                if cursor.rowcount:
                    cursor.execute(f"SELECT last_number FROM {table} WHERE id = 1")  # noqa: S608
                    row = cursor.fetchone()
            if row is not None:
                return int(row[0])
            # A fresh database: the row is made once, then incremented.
            InvoiceCounter.objects.get_or_create(pk=1)
    raise RuntimeError("The invoice counter row could not be made.")


def _number_invoice(invoice: Invoice, placeholder: str, emails: Sequence[OutboxEmail]) -> None:
    """Take the invoice's number and put it where ``placeholder`` stood: the invoice row
    and the text of its emails, rows this transaction wrote and nobody else can lock, so
    nothing here waits while the counter row is held."""
    number = _take_number()
    Invoice.objects.filter(pk=invoice.pk).update(number=number)
    invoice.number = number
    if emails:
        text = {
            field: Replace(F(field), Value(placeholder), Value(str(number)))
            for field in ("subject", "body_text", "body_after_send")
        }
        OutboxEmail.objects.filter(pk__in=[e.pk for e in emails]).update(**text)


def _billing_address(account: Account) -> str:
    parts = [
        account.address_line1,
        account.address_line2,
        " ".join(p for p in (account.postcode, account.city) if p),
        account.country.name,  # "Ireland", not "IE"
    ]
    return "\n".join(p for p in parts if p)


@transaction.atomic
def invoice_create(
    *,
    account: Account,
    lines: Sequence[LineInput],
    due_date: datetime.date,
    issue_date: datetime.date | None = None,
    notes: str = "",
    actor: User | None = None,
    request: HttpRequest | None = None,
    items: Sequence[str] | None = None,
) -> Invoice:
    """Issue an invoice with its lines and email it to the owner and invoice contacts.
    `items` gives each line what it sells (see ``core.billable``), "" for a plain line.

    The number is taken last (``_number_invoice``): the invoice, its lines and its emails
    are written first, the emails' text with a stand-in where the number goes; then the
    counter row is incremented (its lock held from there to the commit), the number put
    in place of the stand-in, and the audit event written. No number is lost if anything
    before fails, and no number is taken twice. Called inside a caller's transaction, the
    lock lasts to that transaction's commit: callers issue the invoice as their last step.
    An invoice that is settled from the start (nothing to pay) hands over what it sells
    after it has its number (those handlers name it), still inside the lock: a rare case.
    """
    if not lines:
        raise BillingError("An invoice needs at least one line.")
    items = list(items) if items is not None else [""] * len(lines)
    if len(items) != len(lines):
        raise BillingError("Each line needs its item.")
    issue_date = issue_date or timezone.localdate()
    if due_date < issue_date:
        raise BillingError("The due date cannot be before the issue date.")
    for line in lines:
        if line.quantity <= 0 or line.unit_price < 0 or not 0 <= line.tax_rate <= 100:
            raise BillingError(
                "Each line needs a positive quantity, a price of 0 or more and a tax rate "
                "between 0 and 100."
            )
    totals = invoice_totals(lines)
    # Nothing to pay (free lines only): the invoice is settled from the start, never
    # "unpaid" and later "overdue".
    settled = totals.total == ZERO
    invoice = Invoice.objects.create(
        status=Invoice.Status.PAID if settled else Invoice.Status.UNPAID,
        paid_at=timezone.now() if settled else None,
        account=account,
        number=None,  # taken last, below
        currency=account.currency,
        issue_date=issue_date,
        due_date=due_date,
        notes=notes,
        subtotal=totals.subtotal,
        tax=totals.tax,
        total=totals.total,
        billing_name=account.display_name[:200],
        billing_address=_billing_address(account),
        tax_number=account.tax_number,
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            position=i,
            description=line.description,
            quantity=line.quantity,
            unit_price=line.unit_price,
            tax_rate=line.tax_rate,
            net_amount=amounts.net,
            tax_amount=amounts.tax,
            item=item,
        )
        for i, (line, amounts, item) in enumerate(zip(lines, totals.lines, items, strict=True))
    )
    # The emails are rendered with a stand-in for the number (letters and digits only, so
    # no escaping or header cleaning changes it), unique to this call.
    placeholder = f"N{uuid.uuid4().hex}"
    emails = notify(
        account=account,
        kind=INVOICE_EMAIL_KIND,
        template="billing/email/invoice_created",
        context={
            "invoice": _NumberedAs(invoice, placeholder),
            "invoice_url": _invoice_url(invoice),
        },
    )
    _number_invoice(invoice, placeholder, emails)
    # Audit events are append-only (never updated), so this one is written once the
    # number is known: one INSERT inside the lock.
    audit_record(
        action="invoice.created",
        actor=actor,
        account=account,
        target=invoice,
        changes={"total": str(invoice.total), "currency": invoice.currency},
        request=request,
        is_staff_action=bool(actor and actor.is_staff),
    )
    if settled:
        _invoice_paid(invoice)
    return invoice


class _NumberedAs:
    """The invoice as an email template sees it, with ``placeholder`` for its number."""

    def __init__(self, invoice: Invoice, placeholder: str) -> None:
        self._invoice = invoice
        self.number = placeholder

    def __getattr__(self, name: str) -> object:
        return getattr(self._invoice, name)


@transaction.atomic
def invoice_cancel(*, invoice_id: int, actor: User, request: HttpRequest | None = None) -> Invoice:
    invoice = _lock_invoice(invoice_id)
    if invoice.status != Invoice.Status.UNPAID:
        raise BillingError(
            f"Invoice #{invoice.number} is {invoice.status}: it cannot be cancelled."
        )
    if invoice.amount_paid > 0:
        raise BillingError(f"Invoice #{invoice.number} is partly paid: refund it instead.")
    if _processing_payment(invoice) is not None:
        raise BillingError(
            f"A card payment of invoice #{invoice.number} is being processed: wait until the "
            "card processor confirms or refuses it."
        )
    _end_awaited_transfers(invoice, "The invoice was cancelled.")
    invoice.status = Invoice.Status.CANCELLED
    invoice.save(update_fields=["status", "awaiting_transfer_since"])
    _release_combined(invoice, "cancelled")
    audit_record(
        action="invoice.cancelled",
        actor=actor,
        account=invoice.account,
        target=invoice,
        request=request,
        is_staff_action=True,
    )
    return invoice


@transaction.atomic
def invoice_refund(
    *, invoice_id: int, actor: User, to_credit: bool, request: HttpRequest | None = None
) -> Transaction:
    """Refund what was paid and not refunded yet (card refunds through the processor,
    ``refunds.card_refund``, may have returned part of it): to the account's credit
    balance, or marked as returned outside the client area."""
    from ..refunds import invoice_refundable, refund_in_flight

    invoice = _lock_invoice(invoice_id)
    if invoice.status not in (Invoice.Status.PAID, Invoice.Status.UNPAID) or (
        invoice.amount_paid <= 0
    ):
        raise BillingError(f"Invoice #{invoice.number} has no payment to refund.")
    if refund_in_flight(invoice):
        raise BillingError(
            f"A card refund of invoice #{invoice.number} is still being processed: wait "
            "until the card processor confirms it."
        )
    amount = invoice_refundable(invoice)
    if amount <= 0:
        raise BillingError(f"Invoice #{invoice.number} was refunded already.")
    tx = Transaction.objects.create(
        invoice=invoice,
        account=invoice.account,
        kind=Transaction.Kind.REFUND,
        status=Transaction.Status.SUCCEEDED,
        gateway=gateways.CREDIT if to_credit else "manual",
        amount=amount,
        currency=invoice.currency,
        idempotency_key=f"refund-{uuid.uuid4().hex}",
        payer=None,
        payer_label=f"staff: {actor.get_full_name()}"[:300],
        method_label="Credit balance" if to_credit else "Returned outside the client area",
        confirmed_at=timezone.now(),
    )
    if to_credit:
        acct = _lock_account(invoice.account_id)
        acct.credit_balance += amount
        acct.save(update_fields=["credit_balance"])
        CreditEntry.objects.create(
            account=acct,
            kind=CreditEntry.Kind.REFUND,
            amount=amount,
            balance_after=acct.credit_balance,
            reason=f"Refund of invoice #{invoice.number}",
            invoice=invoice,
            actor=actor,
        )
    _end_awaited_transfers(invoice, "The invoice was refunded.")
    invoice.status = Invoice.Status.REFUNDED
    invoice.save(update_fields=["status", "awaiting_transfer_since"])
    audit_record(
        action="invoice.refunded",
        actor=actor,
        account=invoice.account,
        target=invoice,
        changes={"amount": str(amount), "to_credit": to_credit},
        request=request,
        is_staff_action=True,
    )
    return tx
