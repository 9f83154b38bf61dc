"""Helpers that several modules of this package share: locking an invoice and the
account, recording a payment on an invoice, the checks every way of paying makes, and the
card processor's first questions. Not part of the package's interface: import the public
names from ``clientarea.billing.services``.

Lock order, everywhere: the invoice row first, then the account row (credit balance), so
two actions never wait on each other in opposite orders."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.accounts.permissions import OwnerPower, Perm
from clientarea.accounts.policy import Access, OutOfReach, access_require, may_use_owner_power
from clientarea.audit.services import audit_record
from clientarea.core import billable
from clientarea.core.outside import OutsideError, outside_call
from clientarea.notifications.services import notify

from .. import gateways
from ..gateways import CardRejected, GatewayError
from ..models import ZERO, CreditEntry, Invoice, Transaction
from .outcomes import (
    ALREADY_PROCESSING,
    CARD_UNAVAILABLE,
    PROCESSING_MESSAGE,
    BillingError,
    PayByBankTransfer,
    PaymentOutcome,
    PaySource,
    PayWithCredit,
)

INVOICE_EMAIL_KIND = "invoice"

IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _invoice_url(invoice: Invoice) -> str:
    return f"{settings.SITE_URL}{reverse('billing:invoice_detail', args=[invoice.pk])}"


def _invoice_paid(invoice: Invoice) -> None:
    """The invoice has just become paid (in this transaction): what its lines sell is
    handed over by the apps that sell it (``core.billable``), committed with the payment."""
    _release_combined(invoice, "paid")
    lines = [line for line in invoice.lines.all() if line.item]
    if not lines:
        return
    billable.items_paid(
        [
            billable.PaidItem(
                invoice_id=invoice.pk,
                invoice_number=invoice.number,
                account_id=invoice.account_id,
                item=line.item,
                amount=line.line_total,
            )
            for line in lines
        ]
    )


def _release_combined(invoice: Invoice, how: str) -> None:
    """`invoice` was just paid or cancelled on its own: an unpaid combined invoice that
    would pay it (Pay several at once) is cancelled, so it no longer asks for money not
    owed, unless money is already on its way to it (paid in part, a card payment being
    processed, a bank transfer awaited): then its share of it goes to the credit balance
    once it is paid. One being paid right now (locked) is left to that payment."""
    holders = (
        Invoice.objects.select_for_update(of=("self",), skip_locked=True)
        .filter(
            account_id=invoice.account_id,
            status=Invoice.Status.UNPAID,
            lines__item=f"{COMBINED_ITEM}:{invoice.pk}",
            amount_paid=ZERO,
            awaiting_transfer_since__isnull=True,
        )
        .exclude(pk=invoice.pk)
    )
    for combined in holders:
        if _processing_payment(combined) is not None:
            continue
        combined.status = Invoice.Status.CANCELLED
        combined.notes = (
            f"{combined.notes}\nCancelled: invoice #{invoice.number} was {how} on its own; "
            "choose the invoices to pay together again."
        ).strip()
        combined.save(update_fields=["status", "notes"])
        audit_record(
            action="invoice.cancelled",
            actor=None,
            account=combined.account,
            target=combined,
            changes={"reason": f"invoice #{invoice.number} was {how} on its own"},
        )


def _invoice_for(invoice_id: int, access: Access, *, lock: bool = False) -> tuple[Invoice, Access]:
    """The invoice, fresh from the database (row-locked when `lock`), if the policy lets
    `access` (as it stands now: ``Access.current``) act on the account's invoices, and
    that current access. Another account's invoice, or an access that has ended, is "no
    such invoice" (``OutOfReach``, a 404); an access without Invoices is ``NotPermitted``
    (403): the check every entry point gets (page, API, command), not only the caller's.
    Only rows of the access's own account are ever locked."""
    rows = Invoice.objects.select_related("account__owner").filter(
        pk=invoice_id, account_id=access.account.pk
    )
    invoice = (rows.select_for_update(of=("self",)) if lock else rows).first()
    if invoice is None:
        raise OutOfReach("No such invoice.")
    return invoice, access_require(access, Perm.INVOICES, invoice, noun="invoice")


def _owner_access(access: Access) -> Access:
    """`access` as it stands now, if it is the owner's (stored cards are theirs alone;
    the pages are owner-only too, the service refuses whoever calls it)."""
    current = access.current()
    if (
        current is None
        or not current.is_owner
        or not may_use_owner_power(current.user, current.account, OwnerPower.MANAGE_PAYMENT_METHODS)
    ):
        raise BillingError("Only the account owner can manage stored payment methods.")
    return current


def _lock_invoice(invoice_id: int, account: Account | None = None) -> Invoice:
    qs = Invoice.objects.select_for_update(of=("self",)).select_related("account__owner")
    if account is not None:
        qs = qs.filter(account=account)
    invoice = qs.filter(pk=invoice_id).first()
    if invoice is None:
        raise BillingError("No such invoice.")
    return invoice


def _lock_account(account_id: int) -> Account:
    return Account.objects.select_for_update().get(pk=account_id)


def _end_awaited_transfers(invoice: Invoice, why: str) -> None:
    Transaction.objects.filter(invoice=invoice, status=Transaction.Status.PENDING).update(
        status=Transaction.Status.FAILED, message=why
    )
    invoice.awaiting_transfer_since = None


def _apply_payment(invoice: Invoice, amount: Decimal) -> None:
    """Record a payment. `awaiting_transfer_since` stays true to the PENDING transfer: a
    partial payment leaves an announced transfer awaited; paying in full ends it."""
    invoice.amount_paid += amount
    fields = ["amount_paid", "awaiting_transfer_since"]
    if invoice.total - invoice.amount_paid <= ZERO:
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = timezone.now()
        fields += ["status", "paid_at"]
        _end_awaited_transfers(invoice, "The invoice was paid another way.")
        invoice.save(update_fields=fields)
        _invoice_paid(invoice)
        return
    elif not Transaction.objects.filter(
        invoice=invoice, status=Transaction.Status.PENDING
    ).exists():
        invoice.awaiting_transfer_since = None
    invoice.save(update_fields=fields)


def _send_receipt(invoice: Invoice, tx: Transaction, payer: User | None) -> None:
    # The payer is copied only while their access still covers invoices: someone revoked
    # since they announced a bank transfer is not sent its receipt.
    notify(
        account=invoice.account,
        kind=INVOICE_EMAIL_KIND,
        template="billing/email/payment_receipt",
        context={"invoice": invoice, "transaction": tx, "invoice_url": _invoice_url(invoice)},
        people=[payer] if payer is not None else [],
    )


def _card_expired(exp_month: int, exp_year: int) -> bool:
    today = timezone.localdate()
    return (exp_year, exp_month) < (today.year, today.month)


def _replayed(invoice: Invoice, idempotency_key: str) -> PaymentOutcome | None:
    """The outcome of the payment already made with this form (the same form submitted
    again: nothing more is charged), or None for a fresh key. Raises for a used form."""
    previous = Transaction.objects.filter(idempotency_key=idempotency_key).first()
    if previous is None:
        return None
    unsettled = (Transaction.Status.FAILED, Transaction.Status.DECLINED)
    if previous.invoice_id != invoice.pk or previous.status in unsettled:
        raise BillingError("This payment form was already used: reload the page to try again.")
    if previous.status == Transaction.Status.PROCESSING:
        return PaymentOutcome("processing", PROCESSING_MESSAGE, previous)
    if previous.status == Transaction.Status.PENDING:
        return PaymentOutcome("pending", "This payment was already made.", previous)
    status: Literal["paid", "partial"] = (
        "paid" if invoice.status == Invoice.Status.PAID else "partial"
    )
    return PaymentOutcome(status, "This payment was already made.", previous)


def _check_payable(invoice: Invoice, source: PaySource) -> None:
    if invoice.status == Invoice.Status.PAID:
        raise BillingError("This invoice is already paid.")
    if not invoice.is_payable:
        raise BillingError(f"A {invoice.get_status_display().lower()} invoice cannot be paid.")
    if _processing_payment(invoice) is not None:
        raise BillingError(ALREADY_PROCESSING)
    if invoice.awaiting_transfer_since is not None and isinstance(source, PayByBankTransfer):
        raise BillingError("A bank transfer for this invoice is already awaited.")
    if isinstance(source, PayWithCredit) and adds_funds(invoice):
        raise BillingError("Funds added to the credit balance cannot be paid with credit.")


FUNDS_ITEM = "billing.funds"

COMBINED_ITEM = "billing.invoice"


def is_combined(invoice: Invoice) -> bool:
    """Whether the invoice pays several others at once (Pay several at once)."""
    return invoice.lines.filter(item__startswith=f"{COMBINED_ITEM}:").exists()


_is_combined = is_combined


def adds_funds(invoice: Invoice) -> bool:
    """Whether paying the invoice puts money on the credit balance (Add Funds)."""
    return invoice.lines.filter(item=FUNDS_ITEM).exists()


def _processing_payment(invoice: Invoice) -> Transaction | None:
    return Transaction.objects.filter(invoice=invoice, status=Transaction.Status.PROCESSING).first()


def _tx_fields(invoice: Invoice, payer: User, idempotency_key: str) -> dict[str, object]:
    return {
        "invoice": invoice,
        "account": invoice.account,
        "currency": invoice.currency,
        "idempotency_key": idempotency_key,
        "payer": payer,
        "payer_label": f"{payer.get_full_name()} <{payer.email}>"[:300],
    }


def _paid_outcome(invoice: Invoice, tx: Transaction, applied: Decimal) -> PaymentOutcome:
    surplus = tx.amount - applied
    kept = (
        f" The invoice no longer needed {surplus} {tx.currency} of it: that was added to "
        "your credit balance."
        if surplus > 0
        else ""
    )
    if invoice.status == Invoice.Status.PAID:
        return PaymentOutcome("paid", f"Thank you: invoice #{invoice.number} is paid.{kept}", tx)
    return PaymentOutcome(
        "partial",
        f"Thank you: {applied} {invoice.currency} was paid; "
        f"{invoice.balance} {invoice.currency} is still due.{kept}",
        tx,
    )


def _new_card_gateway() -> gateways.PaymentGateway:
    gateway = gateways.card_gateway()
    if gateway is None:
        raise BillingError("Card payments are not offered here: pay by credit or bank transfer.")
    return gateway


def _card_from_token(gateway: gateways.PaymentGateway, token: str) -> gateways.CardToken:
    """Ask the card processor what the card the browser gave it is (an outside call)."""
    if not token or len(token) > 100 or not token.isprintable():
        raise BillingError("Enter the card details again: they did not reach the card processor.")
    try:
        # Reading a token changes nothing: safe to retry.
        return outside_call(lambda: gateway.card_from_token(token), retry_uncertain=True)
    except CardRejected as exc:
        raise BillingError(str(exc)) from None
    except OutsideError:
        raise BillingError(
            "The card could not be checked right now and nothing was charged; try again."
        ) from None


def _customer(gateway: gateways.PaymentGateway, account: Account) -> str:
    """The processor's customer of the account (made at the first need: an outside call)."""
    try:
        return outside_call(lambda: gateway.customer_for(account), retry_uncertain=True)
    except OutsideError:
        raise BillingError(CARD_UNAVAILABLE) from None


def _keep_surplus(invoice: Invoice, tx: Transaction, surplus: Decimal) -> None:
    acct = _lock_account(invoice.account_id)
    acct.credit_balance += surplus
    acct.save(update_fields=["credit_balance"])
    invoice.account.credit_balance = acct.credit_balance
    CreditEntry.objects.create(
        account=acct,
        kind=CreditEntry.Kind.SURPLUS,
        amount=surplus,
        balance_after=acct.credit_balance,
        reason=(
            f"Card payment {tx.reference or tx.pk} for invoice #{invoice.number} was confirmed "
            f"after the invoice no longer needed {surplus} {tx.currency} of it"
        )[:300],
        invoice=invoice,
        actor=tx.payer,
    )


def _payment_recorded(
    invoice: Invoice,
    tx: Transaction,
    *,
    actor: User | None,
    request: HttpRequest | None,
    changes: dict[str, object] | None = None,
) -> None:
    """The audit event and the receipt of a payment, made once: when it is recorded as
    succeeded, by whoever records it."""
    audit_record(
        action="invoice.payment",
        actor=actor,
        account=invoice.account,
        target=invoice,
        changes={
            "amount": str(tx.amount),
            "gateway": tx.gateway,
            **(changes or {}),
            "transaction": tx.pk,
        },
        request=request,
    )
    _send_receipt(invoice, tx, tx.payer)


def _stored_card_gateway(code: str) -> gateways.PaymentGateway | None:
    """The gateway that holds cards stored with `code`, or None when nothing outside
    holds them (the sandbox keeps nothing; a gateway no longer configured)."""
    try:
        return gateways.get_gateway(code)
    except GatewayError:
        if code == "stripe":  # Stripe configured by its settings, not (yet) as a gateway
            from ..stripe_gateway import stripe_gateway

            return stripe_gateway()
        return None
