"""Invoices that sell something: Add Funds, one combined payment of several invoices, and
the biller other apps issue their invoices through (``core.billable``).

- **Add Funds**: an invoice of one "billing.funds" line; when it is paid (by card or bank
  transfer, never by credit), its amount goes to the credit balance, once.
- **Pay several invoices at once**: a combined invoice whose lines are the chosen
  invoices' balances ("billing.invoice:<id>", no tax: their own lines carry it). When it
  is paid, each chosen invoice is paid from it, once; what one of them no longer needs
  (paid or cancelled meanwhile) goes to the credit balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import may
from clientarea.audit.services import audit_record
from clientarea.core import billable

from .models import ZERO, CreditEntry, Invoice, InvoiceLine, Transaction
from .services import (
    COMBINED_ITEM,
    FUNDS_ITEM,
    BillingError,
    _apply_payment,
    _lock_account,
    _lock_invoice,
    invoice_create,
)
from .totals import LineInput, to_cents

COMBINED_GATEWAY = "combined"
MAX_COMBINED = 50


def _require_invoices(actor: User, account: Account) -> None:
    # The views require View & Pay Invoices too; the service asks the policy itself.
    if not may(actor, Perm.INVOICES.value, account):
        raise BillingError("You may not pay this account's invoices.")


def _money(value: object) -> Decimal:
    return Decimal(str(value))


def add_funds_limits() -> tuple[Decimal, Decimal, Decimal]:
    """Staff's limits: the smallest and largest payment, and the largest balance."""
    return (
        _money(settings.BILLING_ADD_FUNDS_MIN),
        _money(settings.BILLING_ADD_FUNDS_MAX),
        _money(settings.BILLING_CREDIT_MAX),
    )


def _open_funds_total(account: Account) -> Decimal:
    total = ZERO
    for inv in Invoice.objects.filter(
        account=account, status=Invoice.Status.UNPAID, lines__item=FUNDS_ITEM
    ).distinct():
        total += inv.balance
    return total


@transaction.atomic
def funds_invoice_create(
    *, account: Account, actor: User, amount: Decimal, request: HttpRequest | None = None
) -> Invoice:
    """Add Funds: an invoice for `amount`, within staff's limits. An unpaid Add Funds
    invoice of the same amount is reused (a form sent twice makes one invoice)."""
    _require_invoices(actor, account)
    low, high, most = add_funds_limits()
    if amount != amount.quantize(Decimal("0.01")) or amount <= 0:
        raise BillingError("Enter an amount in whole cents.")
    if not low <= amount <= high:
        raise BillingError(f"Add between {low} and {high} {account.currency} at a time.")
    acct = _lock_account(account.pk)  # one Add Funds at a time per account
    same = (
        Invoice.objects.filter(
            account=acct, status=Invoice.Status.UNPAID, lines__item=FUNDS_ITEM, total=amount
        )
        .order_by("-pk")
        .first()
    )
    if same is not None and same.amount_paid == ZERO:
        return same
    if acct.credit_balance + _open_funds_total(acct) + amount > most:
        room = max(most - acct.credit_balance - _open_funds_total(acct), ZERO)
        raise BillingError(
            f"The credit balance can hold at most {most} {acct.currency}: you can add up to "
            f"{room} {acct.currency} now."
        )
    return invoice_create(
        account=acct,
        lines=[LineInput("Add Funds to the credit balance", Decimal("1"), amount)],
        items=[FUNDS_ITEM],
        due_date=timezone.localdate(),
        actor=actor,
        request=request,
    )


def _funds_paid(paid: billable.PaidItem) -> None:
    acct = _lock_account(paid.account_id)
    if CreditEntry.objects.filter(invoice_id=paid.invoice_id, kind=CreditEntry.Kind.FUNDS).exists():
        return  # already added (an invoice is paid once; this guards it anyway)
    acct.credit_balance += paid.amount
    acct.save(update_fields=["credit_balance"])
    entry = CreditEntry.objects.create(
        account=acct,
        kind=CreditEntry.Kind.FUNDS,
        amount=paid.amount,
        balance_after=acct.credit_balance,
        reason=f"Add Funds: invoice #{paid.invoice_number}",
        invoice_id=paid.invoice_id,
    )
    audit_record(
        action="credit.funds_added",
        actor=None,
        account=acct,
        target=entry,
        changes={"amount": str(paid.amount), "balance": str(acct.credit_balance)},
    )


# --- paying several invoices at once ----------------------------------------------------


def _component_id(item: str) -> int:
    return int(item.split(":", 1)[1])


@transaction.atomic
def combined_invoice_create(
    *,
    account: Account,
    actor: User,
    invoice_ids: Sequence[int],
    request: HttpRequest | None = None,
) -> Invoice:
    """One invoice that pays the chosen unpaid invoices of `account`. Refuses (changing
    nothing) an id that is not an unpaid invoice of this account, one with a card payment
    being processed, Add Funds and combined invoices, and an invoice already in another
    unpaid combined invoice; the same choice made again returns the same invoice."""
    _require_invoices(actor, account)
    ids = sorted(set(invoice_ids))
    if len(ids) < 2:
        raise BillingError("Choose at least two invoices to pay together.")
    if len(ids) > MAX_COMBINED:
        raise BillingError(f"Choose at most {MAX_COMBINED} invoices at a time.")
    chosen = [_lock_invoice(pk, account) for pk in ids]  # pk order: no deadlock
    for inv in chosen:
        if not inv.is_payable:
            raise BillingError(f"Invoice #{inv.number} has nothing to pay.")
        if (
            inv.lines.filter(item__in=[FUNDS_ITEM]).exists()
            or inv.lines.filter(item__startswith=f"{COMBINED_ITEM}:").exists()
        ):
            raise BillingError(f"Invoice #{inv.number} cannot be paid together with others.")
        if Transaction.objects.filter(invoice=inv, status=Transaction.Status.PROCESSING).exists():
            raise BillingError(f"A card payment of invoice #{inv.number} is being processed.")
    wanted = {f"{COMBINED_ITEM}:{inv.pk}" for inv in chosen}
    holders = (
        Invoice.objects.filter(
            account=account,
            status=Invoice.Status.UNPAID,
            lines__item__in=wanted,
        )
        .distinct()
        .prefetch_related("lines")
    )
    for holder in holders:
        items = {line.item for line in holder.lines.all()}
        if items == wanted and holder.amount_paid == ZERO:
            return holder  # the same form sent again
        taken = sorted(_component_id(i) for i in items & wanted)
        numbers = ", ".join(f"#{inv.number}" for inv in chosen if inv.pk in taken)
        raise BillingError(
            f"Invoice {numbers} is already in combined invoice #{holder.number}: pay that one."
        )
    return invoice_create(
        account=account,
        lines=[
            LineInput(f"Invoice #{inv.number}", Decimal("1"), to_cents(inv.balance))
            for inv in chosen
        ],
        items=sorted(wanted, key=_component_id),
        due_date=min(min(inv.due_date for inv in chosen), timezone.localdate()),
        notes="Pays several invoices at once.",
        actor=actor,
        request=request,
    )


def combined_components(invoice: Invoice) -> list[InvoiceLine]:
    return [line for line in invoice.lines.all() if line.item.startswith(f"{COMBINED_ITEM}:")]


def _component_paid(paid: billable.PaidItem) -> None:
    """The combined invoice is paid: pay one chosen invoice from it, once."""
    combined = Invoice.objects.get(pk=paid.invoice_id)
    try:
        inv = _lock_invoice(_component_id(paid.item), combined.account)
    except BillingError:
        inv = None
    key = f"combined-{paid.invoice_id}-{_component_id(paid.item)}"
    if inv is None or Transaction.objects.filter(idempotency_key=key).exists():
        return
    applied = min(paid.amount, inv.balance if inv.is_payable else ZERO)
    surplus = paid.amount - applied
    tx = Transaction.objects.create(
        invoice=inv,
        account=inv.account,
        status=Transaction.Status.SUCCEEDED,
        gateway=COMBINED_GATEWAY,
        amount=applied,
        currency=inv.currency,
        reference=f"INV-{combined.number}",
        idempotency_key=key,
        payer_label=f"combined invoice #{combined.number}",
        method_label=f"Combined invoice #{combined.number}",
        confirmed_at=timezone.now(),
        message=(
            f"{surplus} {inv.currency} was no longer due and went to the credit balance."
            if surplus > 0
            else ""
        ),
    )
    if applied > 0:
        _apply_payment(inv, applied)
    if surplus > 0:
        acct = _lock_account(inv.account_id)
        acct.credit_balance += surplus
        acct.save(update_fields=["credit_balance"])
        CreditEntry.objects.create(
            account=acct,
            kind=CreditEntry.Kind.SURPLUS,
            amount=surplus,
            balance_after=acct.credit_balance,
            reason=(
                f"Combined invoice #{combined.number} paid {surplus} {inv.currency} that "
                f"invoice #{inv.number} no longer needed"
            )[:300],
            invoice=inv,
        )
    audit_record(
        action="invoice.payment",
        actor=None,
        account=inv.account,
        target=inv,
        changes={
            "amount": str(applied),
            "gateway": COMBINED_GATEWAY,
            "combined_invoice": combined.number,
            "transaction": tx.pk,
        },
    )


# --- the biller other apps issue invoices through ---------------------------------------


class Biller:
    def issue(
        self,
        *,
        account: Account,
        lines: Sequence[billable.BillableLine],
        actor: User | None,
        request: HttpRequest | None,
    ) -> tuple[int, int]:
        invoice = invoice_create(
            account=account,
            lines=[
                LineInput(line.description, line.quantity, line.unit_price, line.tax_rate)
                for line in lines
            ],
            items=[line.item for line in lines],
            due_date=timezone.localdate(),
            actor=actor,
            request=request,
        )
        return invoice.pk, invoice.number

    def is_open(self, invoice_id: int) -> bool:
        invoice = Invoice.objects.filter(pk=invoice_id).first()
        return invoice is not None and invoice.status == Invoice.Status.UNPAID


def register() -> None:
    billable.register_biller(Biller())
    billable.register_paid_handler(FUNDS_ITEM, _funds_paid)
    billable.register_paid_handler(COMBINED_ITEM, _component_paid)
