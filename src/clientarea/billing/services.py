"""State-changing actions of billing. Each is one transaction that locks what it changes,
validates, writes, records its audit event and queues its email.

Lock order, everywhere: the invoice row first, then the account row (credit balance), so
two actions never wait on each other in opposite orders.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.accounts.permissions import OwnerPower
from clientarea.accounts.policy import may_use_owner_power
from clientarea.audit.services import audit_record
from clientarea.notifications.services import notify

from . import gateways
from .gateways import CardDetails, CardRejected, ChargeStatus, GatewayError
from .models import (
    ZERO,
    CreditEntry,
    Invoice,
    InvoiceCounter,
    InvoiceLine,
    PaymentMethod,
    Transaction,
)
from .totals import LineInput, invoice_totals

INVOICE_EMAIL_KIND = "invoice"
IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class BillingError(Exception):
    """An action refused for a reason the user should read; nothing was changed."""


# --- paying ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayWithCredit:
    pass


@dataclass(frozen=True)
class PayWithStoredMethod:
    payment_method_id: int


@dataclass(frozen=True)
class PayWithNewCard:
    card: CardDetails
    save: bool = False


@dataclass(frozen=True)
class PayByBankTransfer:
    pass


PaySource = PayWithCredit | PayWithStoredMethod | PayWithNewCard | PayByBankTransfer


@dataclass(frozen=True)
class PaymentOutcome:
    status: Literal["paid", "partial", "pending", "declined", "failed"]
    message: str
    transaction: Transaction | None = None


def _invoice_url(invoice: Invoice) -> str:
    return f"{settings.SITE_URL}{reverse('billing:invoice_detail', args=[invoice.pk])}"


def _next_invoice_number() -> int:
    """Take the next number under the counter's row lock (see InvoiceCounter)."""
    InvoiceCounter.objects.get_or_create(pk=1)
    counter = InvoiceCounter.objects.select_for_update().get(pk=1)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    return counter.last_number


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
) -> Invoice:
    """Issue an invoice with its lines and email it to the owner and invoice contacts."""
    if not lines:
        raise BillingError("An invoice needs at least one line.")
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
        number=_next_invoice_number(),
        currency=account.currency,
        issue_date=issue_date,
        due_date=due_date,
        notes=notes,
        subtotal=totals.subtotal,
        tax=totals.tax,
        total=totals.total,
        billing_name=account.display_name[:200],
        billing_address=_billing_address(account),
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
        )
        for i, (line, amounts) in enumerate(zip(lines, totals.lines, strict=True))
    )
    audit_record(
        action="invoice.created",
        actor=actor,
        account=account,
        target=invoice,
        changes={"total": str(invoice.total), "currency": invoice.currency},
        request=request,
        is_staff_action=bool(actor and actor.is_staff),
    )
    notify(
        account=account,
        kind=INVOICE_EMAIL_KIND,
        template="billing/email/invoice_created",
        context={"invoice": invoice, "invoice_url": _invoice_url(invoice)},
    )
    return invoice


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


def invoice_pay(
    *,
    invoice_id: int,
    account: Account,
    payer: User,
    source: PaySource,
    idempotency_key: str,
    request: HttpRequest | None = None,
) -> PaymentOutcome:
    """Pay the balance of an invoice of `account`.

    The invoice row is locked for the whole payment, so two people paying at the same
    moment are served one after the other and the second finds nothing left to pay. The
    idempotency key (made when the pay page rendered, unique among transactions) makes a
    form submitted twice pay once. A declined card writes nothing; a gateway error leaves
    the invoice unpaid and records the failed attempt.
    """
    if not IDEMPOTENCY_KEY_RE.match(idempotency_key or ""):
        raise BillingError("This payment form has expired: reload the page and try again.")
    new_card_token = None
    if isinstance(source, PayWithNewCard):
        # Tokenizing needs no lock; the card details go no further than the gateway.
        try:
            new_card_token = gateways.CARD_GATEWAY.tokenize_card(source.card)
        except CardRejected as exc:
            raise BillingError(str(exc)) from None
        except GatewayError:
            raise BillingError("The card could not be checked right now; try again.") from None

    with transaction.atomic():
        invoice = _lock_invoice(invoice_id, account)
        previous = Transaction.objects.filter(idempotency_key=idempotency_key).first()
        if previous is not None:
            if previous.invoice_id == invoice.pk and previous.status != Transaction.Status.FAILED:
                # The same form submitted again: report the first result, charge nothing.
                status: Literal["paid", "partial", "pending"] = (
                    "pending"
                    if previous.status == Transaction.Status.PENDING
                    else ("paid" if invoice.status == Invoice.Status.PAID else "partial")
                )
                return PaymentOutcome(status, "This payment was already made.", previous)
            raise BillingError("This payment form was already used: reload the page to try again.")
        if invoice.status == Invoice.Status.PAID:
            raise BillingError("This invoice is already paid.")
        if not invoice.is_payable:
            raise BillingError(f"A {invoice.get_status_display().lower()} invoice cannot be paid.")
        if invoice.awaiting_transfer_since is not None and isinstance(source, PayByBankTransfer):
            raise BillingError("A bank transfer for this invoice is already awaited.")

        amount = invoice.balance
        tx_fields = {
            "invoice": invoice,
            "account": invoice.account,
            "currency": invoice.currency,
            "idempotency_key": idempotency_key,
            "payer": payer,
            "payer_label": f"{payer.get_full_name()} <{payer.email}>"[:300],
        }
        if isinstance(source, PayWithCredit):
            acct = _lock_account(invoice.account_id)
            amount = min(acct.credit_balance, amount)
            if amount <= 0:
                raise BillingError("There is no credit balance to pay with.")
            acct.credit_balance -= amount
            acct.save(update_fields=["credit_balance"])
            invoice.account.credit_balance = acct.credit_balance
            entry = CreditEntry.objects.create(
                account=acct,
                kind=CreditEntry.Kind.USED,
                amount=-amount,
                balance_after=acct.credit_balance,
                reason=f"Payment of invoice #{invoice.number}",
                invoice=invoice,
                actor=payer,
            )
            tx = Transaction.objects.create(
                **tx_fields,
                status=Transaction.Status.SUCCEEDED,
                gateway=gateways.CREDIT,
                amount=amount,
                reference=f"credit-{entry.pk}",
                method_label="Credit balance",
            )
        else:
            gateway: gateways.PaymentGateway
            token: str | None = None
            if isinstance(source, PayByBankTransfer):
                gateway, method_label = gateways.BANK_TRANSFER, "Bank transfer"
            elif isinstance(source, PayWithStoredMethod):
                method = PaymentMethod.objects.filter(
                    account=invoice.account, pk=source.payment_method_id
                ).first()
                if method is None:
                    raise BillingError("Choose one of this account's stored cards.")
                if _card_expired(method.exp_month, method.exp_year):
                    raise BillingError(f"The {method.label} has expired.")
                try:
                    gateway = gateways.get_gateway(method.gateway)
                except GatewayError as exc:  # a card from a gateway no longer configured
                    raise BillingError(
                        f"The {method.label} can no longer be used: choose another way to pay."
                    ) from exc
                token, method_label = method.token, method.label
            else:
                assert new_card_token is not None
                gateway, token = gateways.CARD_GATEWAY, new_card_token.token
                method_label = f"{new_card_token.brand} ending in {new_card_token.last4}"
            try:
                result = gateway.charge(
                    amount=amount,
                    currency=invoice.currency,
                    token=token,
                    idempotency_key=idempotency_key,
                    description=f"INV-{invoice.number}",
                )
            except GatewayError as exc:
                tx = Transaction.objects.create(
                    **tx_fields,
                    status=Transaction.Status.FAILED,
                    gateway=gateway.code,
                    amount=amount,
                    message=str(exc)[:300],
                    method_label=method_label,
                )
                audit_record(
                    action="invoice.payment_failed",
                    actor=payer,
                    account=invoice.account,
                    target=invoice,
                    changes={"amount": str(amount), "gateway": gateway.code},
                    request=request,
                )
                return PaymentOutcome(
                    "failed",
                    "The payment could not be processed and you were not charged. "
                    "Please try again later.",
                    tx,
                )
            if result.status == ChargeStatus.DECLINED:
                return PaymentOutcome("declined", result.message or "The card was declined.")
            if result.status == ChargeStatus.PENDING:
                tx = Transaction.objects.create(
                    **tx_fields,
                    status=Transaction.Status.PENDING,
                    gateway=gateway.code,
                    amount=amount,
                    reference=result.reference,
                    method_label=method_label,
                )
                invoice.awaiting_transfer_since = timezone.now()
                invoice.save(update_fields=["awaiting_transfer_since"])
                audit_record(
                    action="invoice.bank_transfer_announced",
                    actor=payer,
                    account=invoice.account,
                    target=invoice,
                    changes={"amount": str(amount)},
                    request=request,
                )
                return PaymentOutcome(
                    "pending",
                    "Thank you: the invoice is marked as awaiting your bank transfer.",
                    tx,
                )
            tx = Transaction.objects.create(
                **tx_fields,
                status=Transaction.Status.SUCCEEDED,
                gateway=gateway.code,
                amount=amount,
                reference=result.reference,
                method_label=method_label,
            )
            if (
                isinstance(source, PayWithNewCard)
                and source.save
                and new_card_token is not None
                # only the owner stores cards
                and may_use_owner_power(payer, invoice.account, OwnerPower.MANAGE_PAYMENT_METHODS)
            ):
                _store_card(invoice.account, payer, new_card_token, request)

        _apply_payment(invoice, amount)
        audit_record(
            action="invoice.payment",
            actor=payer,
            account=invoice.account,
            target=invoice,
            changes={"amount": str(amount), "gateway": tx.gateway, "transaction": tx.pk},
            request=request,
        )
        _send_receipt(invoice, tx, payer)
        if invoice.status == Invoice.Status.PAID:
            return PaymentOutcome("paid", f"Thank you: invoice #{invoice.number} is paid.", tx)
        return PaymentOutcome(
            "partial",
            f"Thank you: {amount} {invoice.currency} was paid; "
            f"{invoice.balance} {invoice.currency} is still due.",
            tx,
        )


# --- back office ------------------------------------------------------------------------


@transaction.atomic
def bank_transfer_confirm(
    *, invoice_id: int, actor: User, request: HttpRequest | None = None
) -> Transaction:
    """Staff saw the money arrive: the awaited transfer becomes a payment."""
    invoice = _lock_invoice(invoice_id)
    tx = (
        Transaction.objects.select_for_update()
        .filter(invoice=invoice, status=Transaction.Status.PENDING)
        .order_by("created_at", "pk")
        .first()
    )
    if tx is None:
        raise BillingError(f"Invoice #{invoice.number} awaits no bank transfer.")
    if not invoice.is_payable:
        raise BillingError(f"Invoice #{invoice.number} has nothing left to pay.")
    tx.amount = min(tx.amount, invoice.balance)
    tx.status = Transaction.Status.SUCCEEDED
    tx.confirmed_at = timezone.now()
    tx.save(update_fields=["amount", "status", "confirmed_at"])
    _apply_payment(invoice, tx.amount)
    audit_record(
        action="invoice.bank_transfer_confirmed",
        actor=actor,
        account=invoice.account,
        target=invoice,
        changes={"amount": str(tx.amount), "transaction": tx.pk},
        request=request,
        is_staff_action=True,
    )
    _send_receipt(invoice, tx, tx.payer)
    return tx


@transaction.atomic
def invoice_cancel(*, invoice_id: int, actor: User, request: HttpRequest | None = None) -> Invoice:
    invoice = _lock_invoice(invoice_id)
    if invoice.status != Invoice.Status.UNPAID:
        raise BillingError(
            f"Invoice #{invoice.number} is {invoice.status}: it cannot be cancelled."
        )
    if invoice.amount_paid > 0:
        raise BillingError(f"Invoice #{invoice.number} is partly paid: refund it instead.")
    _end_awaited_transfers(invoice, "The invoice was cancelled.")
    invoice.status = Invoice.Status.CANCELLED
    invoice.save(update_fields=["status", "awaiting_transfer_since"])
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
    """Refund what was paid: to the account's credit balance, or marked as returned
    outside the client area (e.g. through the card processor's dashboard)."""
    invoice = _lock_invoice(invoice_id)
    if invoice.status not in (Invoice.Status.PAID, Invoice.Status.UNPAID) or (
        invoice.amount_paid <= 0
    ):
        raise BillingError(f"Invoice #{invoice.number} has no payment to refund.")
    amount = invoice.amount_paid
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


@transaction.atomic
def credit_add(
    *,
    account_id: int,
    amount: Decimal,
    reason: str,
    actor: User,
    request: HttpRequest | None = None,
) -> CreditEntry:
    if amount <= 0 or amount != amount.quantize(Decimal("0.01")):
        raise BillingError("Enter a positive amount in whole cents.")
    if not reason.strip():
        raise BillingError("Say why the credit is added.")
    acct = _lock_account(account_id)
    acct.credit_balance += amount
    acct.save(update_fields=["credit_balance"])
    entry = CreditEntry.objects.create(
        account=acct,
        kind=CreditEntry.Kind.ADDED,
        amount=amount,
        balance_after=acct.credit_balance,
        reason=reason.strip(),
        actor=actor,
    )
    audit_record(
        action="credit.added",
        actor=actor,
        account=acct,
        target=entry,
        changes={"amount": str(amount), "balance": str(acct.credit_balance)},
        request=request,
        is_staff_action=bool(actor.is_staff),
    )
    return entry


# --- payment methods (owner only) --------------------------------------------------------


def _store_card(
    account: Account, actor: User, token: gateways.CardToken, request: HttpRequest | None
) -> PaymentMethod:
    method = PaymentMethod.objects.create(
        account=account,
        gateway=gateways.CARD_GATEWAY.code,
        token=token.token,
        brand=token.brand,
        last4=token.last4,
        exp_month=token.exp_month,
        exp_year=token.exp_year,
        created_by=actor,
    )
    audit_record(
        action="payment_method.added",
        actor=actor,
        account=account,
        target=method,
        target_label=method.label,
        request=request,
    )
    return method


def _require_owner(account: Account, actor: User) -> None:
    # The views are @owner_only already; the service refuses too, whoever calls it.
    if not may_use_owner_power(actor, account, OwnerPower.MANAGE_PAYMENT_METHODS):
        raise BillingError("Only the account owner can manage stored payment methods.")


def payment_method_add(
    *, account: Account, actor: User, card: CardDetails, request: HttpRequest | None = None
) -> PaymentMethod:
    _require_owner(account, actor)
    try:
        token = gateways.CARD_GATEWAY.tokenize_card(card)
    except CardRejected as exc:
        raise BillingError(str(exc)) from None
    except GatewayError:
        raise BillingError("The card could not be checked right now; try again.") from None
    with transaction.atomic():
        return _store_card(account, actor, token, request)


@transaction.atomic
def payment_method_remove(
    *,
    account: Account,
    actor: User,
    payment_method_id: int,
    request: HttpRequest | None = None,
) -> None:
    _require_owner(account, actor)
    method = (
        PaymentMethod.objects.select_for_update()
        .filter(account=account, pk=payment_method_id)
        .first()
    )
    if method is None:
        raise BillingError("No such payment method.")
    label = method.label
    audit_record(
        action="payment_method.removed",
        actor=actor,
        account=account,
        target=method,
        target_label=label,
        request=request,
    )
    method.delete()
