"""Card refunds through Stripe, from the back office: in full or in part, exactly once.

A refund moves money at the card processor, so it follows the rule of ``core.outside``
("record the intent, call outside, record the result"):

A. one short transaction locks the invoice, checks the amount against what is left to
   refund (of that payment and of the invoice), and records the refund as a
   ``Transaction`` of kind refund, "processing", with its own idempotency key; commit;
B. Stripe is asked to refund, with no transaction open, with that key as the
   idempotency key (a retry refunds once) and in the refund's metadata (``refund``);
C. a second short transaction records Stripe's answer, once (``refund_record``).

Stripe's ``charge.refunded`` webhook records the same refund through the same step C:
the refund is found by the key in its metadata (ours) or by Stripe's id (``reference``,
unique among refunds), so whichever comes first records it and the other finds it
recorded. A refund made in Stripe's own dashboard is recorded from the webhook too, once
(keyed by Stripe's refund id). A refund whose answer was lost, or that Stripe reports
pending, stays "processing" (shown so in the back office) until ``refunds_reconcile_due``,
a worker job, asks Stripe and records its answer.

What a refund changes here: the refund is a transaction of the invoice (the payment list
shows it); once everything paid for an invoice is refunded, the invoice is "refunded".
A partial refund leaves a paid invoice paid. Only a paid invoice is refunded to the card:
it takes no payment, so a refund in flight never meets a payment in flight. Refunds never
touch the credit balance (the money goes back to the card); ``services.invoice_refund``
refunds to credit only what no refund has returned yet.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.http import HttpRequest
from django.utils import timezone

from clientarea.accounts.models import User
from clientarea.audit.services import audit_record
from clientarea.core.outside import (
    OutsideError,
    OutsideRefused,
    OutsideUncertain,
    assert_no_transaction,
    outside_call,
)

from . import gateways
from .models import ZERO, Invoice, Transaction
from .stripe_gateway import (
    RefundResult,
    StripeAmountError,
    StripeGateway,
    StripeRequestRefused,
    from_minor,
    stripe_gateway,
    to_minor,
)

logger = logging.getLogger(__name__)

STRIPE = "stripe"
REASONS = {
    "requested_by_customer": "Requested by the customer",
    "duplicate": "Duplicate payment",
    "fraudulent": "Fraudulent payment",
}
# Counted against what is left to refund: made, or possibly being made.
_COUNTED = (Transaction.Status.SUCCEEDED, Transaction.Status.PROCESSING)


class RefundError(Exception):
    """A refund refused for a reason staff should read; nothing was changed."""


@dataclass(frozen=True)
class RefundOutcome:
    # refunded: Stripe made it; processing: Stripe has not confirmed it yet (pending, or
    # its answer was lost): the worker settles it; failed: nothing was refunded.
    status: Literal["refunded", "processing", "failed"]
    message: str
    transaction: Transaction


def gateway() -> StripeGateway:
    """The Stripe gateway refunds go through: the registered one, else the settings'."""
    found = gateways.GATEWAYS.get(STRIPE)
    return found if isinstance(found, StripeGateway) else stripe_gateway()


# --- what is left to refund ----------------------------------------------------------------


def _sum(transactions: QuerySet[Transaction]) -> Decimal:
    total: Decimal | None = transactions.aggregate(total=Sum("amount"))["total"]
    return total or ZERO


def invoice_refundable(invoice: Invoice) -> Decimal:
    """What was paid for `invoice` and not refunded, nor being refunded."""
    refunded = _sum(
        Transaction.objects.filter(
            invoice=invoice, kind=Transaction.Kind.REFUND, status__in=_COUNTED
        )
    )
    return max(invoice.amount_paid - refunded, ZERO)


def payment_refundable(invoice: Invoice, payment: Transaction) -> Decimal:
    """What may still be refunded of a card `payment`: what its refunds left of it, and
    no more than the invoice has left (a payment's part that went to the credit balance,
    no longer needed by the invoice, is not refunded to the card)."""
    refunded = _sum(payment.refunds.filter(status__in=_COUNTED))
    return max(min(payment.amount - refunded, invoice_refundable(invoice)), ZERO)


def refund_in_flight(invoice: Invoice) -> Transaction | None:
    return Transaction.objects.filter(
        invoice=invoice, kind=Transaction.Kind.REFUND, status=Transaction.Status.PROCESSING
    ).first()


def refundable_payments(invoice: Invoice) -> list[tuple[Transaction, Decimal]]:
    """The Stripe card payments of a paid invoice with something left to refund, and
    how much."""
    if invoice.status != Invoice.Status.PAID:
        return []
    payments = Transaction.objects.filter(
        invoice=invoice,
        kind=Transaction.Kind.PAYMENT,
        gateway=STRIPE,
        status=Transaction.Status.SUCCEEDED,
        reference__startswith="pi_",
    ).order_by("created_at", "pk")
    found = [(payment, payment_refundable(invoice, payment)) for payment in payments]
    return [(payment, left) for payment, left in found if left > 0]


def parse_amount(text: str) -> Decimal | None:
    """An amount typed by staff ("" = all that is left), or RefundError."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        amount = Decimal(text.replace(",", "."))
    except InvalidOperation:
        raise RefundError("Enter the amount to refund as a number, e.g. 25.00.") from None
    if not amount.is_finite():
        raise RefundError("Enter the amount to refund as a number, e.g. 25.00.")
    return amount


# --- A: record the refund ---------------------------------------------------------------


def _refund_begin(
    *,
    invoice_id: int,
    payment_id: int,
    amount: Decimal | None,
    reason: str,
    actor: User,
    request: HttpRequest | None,
) -> Transaction:
    from .services import BillingError, _lock_invoice

    if reason and reason not in REASONS:
        raise RefundError("Choose one of the listed reasons, or none.")
    with transaction.atomic():
        try:
            invoice = _lock_invoice(invoice_id)
        except BillingError as exc:
            raise RefundError(str(exc)) from None
        payment = Transaction.objects.filter(
            invoice=invoice,
            pk=payment_id,
            kind=Transaction.Kind.PAYMENT,
            gateway=STRIPE,
            status=Transaction.Status.SUCCEEDED,
            reference__startswith="pi_",
        ).first()
        if payment is None:
            raise RefundError(f"Choose a card payment of invoice #{invoice.number} to refund.")
        if invoice.status != Invoice.Status.PAID:
            # A refund in flight must never meet a payment in flight (one processing
            # transaction per invoice): only a paid invoice, which takes no payment, is
            # refunded to the card. A partly paid one is refunded to credit or cancelled.
            raise RefundError(
                f"Invoice #{invoice.number} is {invoice.display_status_label.lower()}: only a "
                "paid invoice is refunded to the card (refund a partly paid one to credit)."
            )
        if Transaction.objects.filter(
            invoice=invoice, status=Transaction.Status.PROCESSING
        ).exists():
            raise RefundError(
                f"A payment or refund of invoice #{invoice.number} is still being processed: "
                "wait until the card processor confirms it."
            )
        left = payment_refundable(invoice, payment)
        if left <= 0:
            raise RefundError(
                f"Nothing is left to refund of this payment of invoice #{invoice.number}."
            )
        if amount is None:
            amount = left
        if amount <= 0:
            raise RefundError("The amount to refund must be more than 0.")
        if amount > left:
            raise RefundError(
                f"At most {left} {invoice.currency} of this payment can be refunded "
                f"({amount} {invoice.currency} asked)."
            )
        try:
            to_minor(amount, invoice.currency)
        except StripeAmountError:
            raise RefundError(
                f"{amount} is not an amount of {invoice.currency} the card processor can "
                "refund (too many decimals for the currency)."
            ) from None
        grace = datetime.timedelta(seconds=settings.PENDING_CHANGE_GRACE_SECONDS)
        tx = Transaction.objects.create(
            invoice=invoice,
            account=invoice.account,
            kind=Transaction.Kind.REFUND,
            status=Transaction.Status.PROCESSING,
            gateway=STRIPE,
            amount=amount,
            currency=invoice.currency,
            idempotency_key=f"refund-{uuid.uuid4().hex}",
            payer=None,
            payer_label=f"staff: {actor.get_full_name() or actor.email}"[:300],
            method_label=(payment.method_label or "Card")[:60],
            message=REASONS.get(reason, ""),
            refund_of=payment,
            next_check_at=timezone.now() + grace,
        )
        audit_record(
            action="invoice.refund_requested",
            actor=actor,
            account=invoice.account,
            target=invoice,
            changes={"amount": str(amount), "gateway": STRIPE, "transaction": tx.pk},
            request=request,
            is_staff_action=True,
        )
    return tx


# --- B: ask Stripe ------------------------------------------------------------------------

NOT_REACHED = "Stripe could not be reached: nothing was refunded. Try again later."
PROCESSING_MESSAGE = (
    "Stripe has not confirmed the refund yet: it shows as processing until it does (the "
    "worker asks Stripe), and is recorded once."
)


def _refund_call(tx: Transaction, reason: str) -> RefundResult | str | None:
    """Step B, with no transaction open: Stripe's refund, the reason nothing was
    refunded (a str), or None when the answer never came (the refund may exist)."""
    assert_no_transaction()
    payment = tx.refund_of
    assert payment is not None
    stripe = gateway()

    def attempt() -> RefundResult:
        return stripe.refund_create(
            payment_intent=payment.reference,
            idempotency_key=tx.idempotency_key,
            amount=tx.amount,
            currency=tx.currency,
            reason=reason or None,
            metadata={"refund": tx.idempotency_key, "invoice": str(tx.invoice.number)},
        )

    try:
        # The same idempotency key: a retry after no answer refunds at most once.
        return outside_call(attempt, retry_uncertain=True)
    except OutsideUncertain:
        return None
    except StripeRequestRefused as exc:
        return f"Stripe refused the refund: {exc.detail or exc}"[:300]
    except OutsideRefused as exc:
        return f"Stripe refused the refund: {exc}"[:300]
    except OutsideError:
        return NOT_REACHED


def card_refund(
    *,
    invoice_id: int,
    payment_id: int,
    amount: Decimal | None,
    actor: User,
    reason: str = "",
    request: HttpRequest | None = None,
) -> RefundOutcome:
    """Refund `amount` (None: all that is left) of the Stripe card payment `payment_id`
    of invoice `invoice_id`, for staff `actor`. Raises RefundError (nothing done) for
    what cannot be refunded."""
    tx = _refund_begin(
        invoice_id=invoice_id,
        payment_id=payment_id,
        amount=amount,
        reason=reason,
        actor=actor,
        request=request,
    )
    answer = _refund_call(tx, reason)
    if answer is None:
        tx.refresh_from_db()
        return RefundOutcome("processing", PROCESSING_MESSAGE, tx)
    if isinstance(answer, str):
        return refund_failed(tx.pk, answer, actor=actor, request=request)
    return refund_record(tx.pk, answer, actor=actor, request=request)


# --- C: record Stripe's answer, once ----------------------------------------------------


def _outcome(tx: Transaction) -> RefundOutcome:
    if tx.status == Transaction.Status.SUCCEEDED:
        return RefundOutcome(
            "refunded", f"{tx.amount} {tx.currency} was refunded to the card ({tx.reference}).", tx
        )
    if tx.status == Transaction.Status.PROCESSING:
        return RefundOutcome("processing", PROCESSING_MESSAGE, tx)
    return RefundOutcome("failed", tx.message or "Nothing was refunded.", tx)


def _locked(tx_id: int) -> tuple[Invoice, Transaction]:
    from .services import _lock_invoice

    invoice_pk = Transaction.objects.values_list("invoice_id", flat=True).get(pk=tx_id)
    invoice = _lock_invoice(invoice_pk)
    tx = Transaction.objects.select_for_update(of=("self",)).get(pk=tx_id)
    return invoice, tx


def refund_record(
    tx_id: int,
    result: RefundResult,
    *,
    actor: User | None = None,
    request: HttpRequest | None = None,
    by: str = "",
) -> RefundOutcome:
    """Record Stripe's answer about refund `tx_id`, exactly once, whoever learnt it (the
    staff request, the webhook, the worker). A success is recorded over a refund taken
    for failed (Stripe says the money went back); nothing else changes a settled one."""
    with transaction.atomic():
        invoice, tx = _locked(tx_id)
        _apply(invoice, tx, result, actor=actor, request=request, by=by)
        return _outcome(tx)


def _apply(
    invoice: Invoice,
    tx: Transaction,
    result: RefundResult,
    *,
    actor: User | None,
    request: HttpRequest | None,
    by: str,
) -> None:
    """Record `result` on the locked refund `tx` of the locked `invoice` (step C)."""
    settles = tx.status == Transaction.Status.PROCESSING or (
        tx.status == Transaction.Status.FAILED and result.status == "succeeded"
    )
    if not settles or (tx.reference and tx.reference != result.id):
        return
    tx.reference = result.id
    if result.status in ("pending", "requires_action"):
        if tx.status == Transaction.Status.PROCESSING:
            tx.save(update_fields=["reference"])
        return
    tx.next_check_at = None
    tx.confirmed_at = timezone.now()
    if result.status != "succeeded":  # failed, canceled
        tx.status = Transaction.Status.FAILED
        why = result.failure_reason.replace("_", " ") or result.status
        tx.message = f"Stripe could not refund it ({why}): nothing was refunded."[:300]
        tx.save()
        audit_record(
            action="invoice.refund_failed",
            actor=actor,
            account=invoice.account,
            target=invoice,
            changes={"amount": str(tx.amount), "transaction": tx.pk, "reason": tx.message},
            request=request,
            is_staff_action=True,
        )
        return
    _succeeded(invoice, tx, result, actor=actor, request=request, by=by)


def _succeeded(
    invoice: Invoice,
    tx: Transaction,
    result: RefundResult,
    *,
    actor: User | None,
    request: HttpRequest | None,
    by: str,
) -> None:
    refunded = from_minor(result.amount, result.currency)
    if refunded != tx.amount:
        logger.error(
            "Stripe refund %s is %s %s, refund %s asked %s %s: recorded as Stripe made it",
            result.id,
            result.amount,
            result.currency,
            tx.pk,
            tx.amount,
            tx.currency,
        )
        tx.amount = refunded
    tx.status = Transaction.Status.SUCCEEDED
    tx.reference = result.id
    tx.next_check_at = None
    tx.confirmed_at = timezone.now()
    tx.save()
    _refund_applied(invoice)
    audit_record(
        action="invoice.refunded",
        actor=actor,
        account=invoice.account,
        target=invoice,
        changes={
            "amount": str(tx.amount),
            "gateway": STRIPE,
            "transaction": tx.pk,
            **({"settled_by": by} if by else {}),
        },
        request=request,
        is_staff_action=True,
    )


def _refund_applied(invoice: Invoice) -> None:
    """Everything paid for the invoice has been refunded: the invoice is refunded."""
    from .services import _end_awaited_transfers

    refunded = _sum(
        Transaction.objects.filter(
            invoice=invoice, kind=Transaction.Kind.REFUND, status=Transaction.Status.SUCCEEDED
        )
    )
    if invoice.status in (Invoice.Status.PAID, Invoice.Status.UNPAID) and (
        refunded >= invoice.amount_paid
    ):
        _end_awaited_transfers(invoice, "The invoice was refunded.")
        invoice.status = Invoice.Status.REFUNDED
        invoice.save(update_fields=["status", "awaiting_transfer_since"])


def refund_failed(
    tx_id: int, message: str, *, actor: User | None = None, request: HttpRequest | None = None
) -> RefundOutcome:
    """Stripe refused the refund, or was not reached: nothing was refunded."""
    with transaction.atomic():
        invoice, tx = _locked(tx_id)
        if tx.status == Transaction.Status.PROCESSING:
            tx.status = Transaction.Status.FAILED
            tx.message = message[:300]
            tx.next_check_at = None
            tx.confirmed_at = timezone.now()
            tx.save()
            audit_record(
                action="invoice.refund_failed",
                actor=actor,
                account=invoice.account,
                target=invoice,
                changes={"amount": str(tx.amount), "transaction": tx.pk, "reason": tx.message},
                request=request,
                is_staff_action=True,
            )
        return _outcome(tx)


# --- the webhook: refunds Stripe reports -------------------------------------------------


def refund_seen(result: RefundResult) -> str:
    """Record a refund Stripe reports (charge.refunded), inside the event's transaction:
    ours (by the key in its metadata, or its id) through step C, once; one made in
    Stripe's dashboard as a new refund of the payment, once (keyed by Stripe's id).
    Returns what was done, for the event's record."""
    match = Q(reference=result.id)
    if result.metadata.get("refund"):
        match |= Q(idempotency_key=str(result.metadata["refund"]))
    ours = Transaction.objects.filter(kind=Transaction.Kind.REFUND, gateway=STRIPE).filter(match)
    found = ours.values_list("pk", flat=True).first()
    if found is not None:
        invoice, tx = _locked(found)
        before = tx.status
        _apply(invoice, tx, result, actor=None, request=None, by="webhook")
        if tx.status == before:
            return f"refund {tx.pk}: already {tx.status}"
        return f"refund {tx.pk}: {tx.status}"
    payment = (
        Transaction.objects.filter(
            kind=Transaction.Kind.PAYMENT,
            gateway=STRIPE,
            reference=result.payment_intent,
            status=Transaction.Status.SUCCEEDED,
        ).first()
        if result.payment_intent
        else None
    )
    if payment is None:
        return f"{result.id}: no payment of ours"
    if result.status not in ("succeeded", "pending"):
        return f"{result.id}: {result.status} at Stripe, nothing to record"
    return _record_outside_refund(payment, result)


def _record_outside_refund(payment: Transaction, result: RefundResult) -> str:
    """A refund made in Stripe's dashboard: recorded as a refund of `payment`, once."""
    from .services import _lock_invoice

    invoice = _lock_invoice(payment.invoice_id)
    if result.currency.lower() != invoice.currency.lower():
        logger.error(
            "Stripe refund %s is in %s, invoice %s in %s: not recorded",
            result.id,
            result.currency,
            invoice.pk,
            invoice.currency,
        )
        return f"{result.id}: currency differs, not recorded"
    pending = result.status != "succeeded"
    in_flight = Transaction.objects.filter(invoice=invoice, status=Transaction.Status.PROCESSING)
    if pending and (invoice.status != Invoice.Status.PAID or in_flight.exists()):
        # Not recorded as processing where it could meet a payment in flight.
        logger.error(
            "Refund %s of invoice #%s, made in Stripe's dashboard, is pending there: not "
            "recorded; record it once it succeeds",
            result.id,
            invoice.number,
        )
        return f"{result.id}: pending at Stripe, not recorded"
    key = f"stripe-{result.id}"[:64]
    if Transaction.objects.filter(idempotency_key=key).exists():
        return f"{result.id}: already recorded"
    tx = Transaction(
        invoice=invoice,
        account=invoice.account,
        kind=Transaction.Kind.REFUND,
        status=Transaction.Status.PROCESSING,
        gateway=STRIPE,
        amount=from_minor(result.amount, result.currency),
        currency=invoice.currency,
        reference=result.id,
        idempotency_key=key,
        payer_label="staff: in Stripe's dashboard",
        method_label=(payment.method_label or "Card")[:60],
        refund_of=payment,
        # Pending at Stripe: the worker asks about it from now on.
        next_check_at=timezone.now(),
    )
    if pending:
        tx.save()
    else:
        _succeeded(invoice, tx, result, actor=None, request=None, by="webhook")
    logger.warning(
        "Refund %s of invoice #%s was made in Stripe's dashboard: recorded as refund %s",
        result.id,
        invoice.number,
        tx.pk,
    )
    return f"refund {tx.pk} made at Stripe: {tx.status}"


# --- the worker: refunds left processing ------------------------------------------------


def refund_reconcile(tx: Transaction, *, now: datetime.datetime | None = None) -> str:
    """Ask Stripe about one processing refund (no transaction open) and record its
    answer: "settled", "failed" (Stripe never received it) or "processing" (pending
    at Stripe, or Stripe not reached: asked again later)."""
    assert_no_transaction()
    payment = tx.refund_of
    stripe = gateway()
    result: RefundResult | None
    try:
        if tx.reference:
            result = outside_call(
                lambda: stripe.refund_retrieve(tx.reference), retry_uncertain=True
            )
        elif payment is not None:
            result = outside_call(
                lambda: stripe.refund_find(payment.reference, tx.idempotency_key),
                retry_uncertain=True,
            )
        else:
            result = None
    except OutsideError as exc:
        give_up = tx.created_at + datetime.timedelta(hours=settings.PENDING_CHANGE_GIVE_UP_HOURS)
        if (now or timezone.now()) >= give_up:
            # Never given up on: Stripe may have refunded it. Staff see it processing.
            logger.error("Refund %s still unknown: Stripe not answering (%s)", tx.pk, exc)
        return "processing"
    if result is None:
        refund_failed(tx.pk, "The refund never reached Stripe: nothing was refunded.")
        return "failed"
    outcome = refund_record(tx.pk, result, by="reconciliation")
    return {"refunded": "settled", "failed": "failed"}.get(outcome.status, "processing")


def refunds_reconcile_due(*, now: datetime.datetime | None = None, limit: int = 50) -> str:
    """The worker's job: ask Stripe about refunds left processing past their grace
    period (an answer lost, a refund pending at Stripe) and record the answers, once."""
    from .services import processing_transactions_settle_due

    return processing_transactions_settle_due(
        kind=Transaction.Kind.REFUND,
        settle=lambda tx, at: refund_reconcile(tx, now=at),
        noun="card refund",
        now=now,
        limit=limit,
    )
