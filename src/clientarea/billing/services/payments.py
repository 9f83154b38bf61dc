"""Paying an invoice (``invoice_pay``: credit balance, bank transfer, or a card through
``cards``), staff confirming an announced bank transfer, and staff adding credit."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from clientarea.accounts.models import User
from clientarea.accounts.permissions import OwnerPower
from clientarea.accounts.policy import Access, may_use_owner_power
from clientarea.audit.services import audit_record
from clientarea.core.retention import delete_in_batches

from .. import gateways
from ..models import CreditEntry, Invoice, PaymentRequest, Transaction
from ._common import (
    IDEMPOTENCY_KEY_RE,
    _apply_payment,
    _card_from_token,
    _check_payable,
    _customer,
    _invoice_for,
    _lock_account,
    _lock_invoice,
    _new_card_gateway,
    _paid_outcome,
    _payment_recorded,
    _replayed,
    _send_receipt,
    _tx_fields,
    is_combined,
)
from .cards import _charge, _gateway_of_stored_card, card_payment_begin, card_payment_record
from .outcomes import (
    PROCESSING_MESSAGE,
    BillingError,
    IdempotencyKeyReused,
    PayByBankTransfer,
    PaymentOutcome,
    PaySource,
    PayWithCredit,
    PayWithNewCard,
)


def invoice_pay(
    *,
    invoice_id: int,
    access: Access,
    source: PaySource,
    idempotency_key: str,
    apply_credit_first: bool = False,
    return_url: str = "",
    request: HttpRequest | None = None,
) -> PaymentOutcome:
    """Pay the balance of an invoice for the person of `access` (Invoices, the invoice of
    their account): the policy is asked here, before anything else and again under each
    lock, so no entry point pays for someone it should not (``_invoice_for``).

    Credit and bank transfer call nothing outside: one transaction, holding the invoice
    row lock. A card payment calls the card processor, which never happens inside a
    transaction or under a lock (``core.outside``), so it takes three steps:

    A. one short transaction locks the invoice, validates, and records the payment as
       "processing" with its idempotency key (at most one per invoice: a second payer
       is told a payment is already being processed), then commits;
    B. the processor is asked to charge, with that key (a retry charges at most once);
    C. a second short transaction locks the invoice again and records the answer, once.

    If the answer never comes (a timeout, a crash between B and C), the payment stays
    processing; the customer is told so, and ``payments_reconcile_due`` later asks the
    processor and settles it. The idempotency key (made when the pay page rendered,
    unique among transactions) makes a form submitted twice pay once.

    A card is paid while its holder is on the page (`return_url`, where the processor
    sends the browser back after 3-D Secure): the outcome may be "requires_action", with
    the bank's page to send the browser to; ``card_payment_return`` then settles it.

    `apply_credit_first`: the credit balance pays what it can first (committed on its
    own), and `source` pays the rest; the customer chose this in so many words, so a card
    refused afterwards leaves the credit applied and says so.
    """
    # Refused before anything is read of the form or asked of the card processor.
    _, current = _invoice_for(invoice_id, access)
    account, payer = current.account, current.user
    if not IDEMPOTENCY_KEY_RE.match(idempotency_key or ""):
        raise BillingError("This payment form has expired: reload the page and try again.")
    if apply_credit_first and not isinstance(source, PayWithCredit):
        credit = _apply_credit_first(invoice_id, access, idempotency_key, request)
        if credit is not None and credit.status == "paid":
            return credit  # the credit covered the whole balance after all
        outcome = invoice_pay(
            invoice_id=invoice_id,
            access=access,
            source=source,
            idempotency_key=idempotency_key,
            return_url=return_url,
            request=request,
        )
        if credit is None or credit.transaction is None:
            return outcome
        applied = f"Your credit of {credit.transaction.amount} {credit.transaction.currency} "
        if outcome.status in ("declined", "failed"):
            return replace(outcome, message=f"{applied}was applied; {outcome.message}")
        return replace(outcome, message=f"{applied}was applied. {outcome.message}")

    if isinstance(source, PayWithCredit | PayByBankTransfer):
        with transaction.atomic():
            invoice, current = _invoice_for(invoice_id, access, lock=True)
            payer = current.user
            replay = _replayed(invoice, idempotency_key)
            if replay is not None:
                return replay
            _check_payable(invoice, source)
            fields = _tx_fields(invoice, payer, idempotency_key)
            if isinstance(source, PayWithCredit):
                return _pay_with_credit(invoice, payer, fields, request)
            return _announce_transfer(invoice, payer, fields, request)

    # Outside calls before anything is recorded: what the card is, and (for a stored card
    # or one to keep) the processor's customer it belongs to.
    new_card: gateways.CardToken | None = None
    save = False
    if isinstance(source, PayWithNewCard):
        gateway = _new_card_gateway()
        new_card = _card_from_token(gateway, source.token)
        # Only the owner stores cards: a forged "save" from anyone else is ignored.
        save = (
            source.save
            and current.is_owner
            and may_use_owner_power(payer, account, OwnerPower.MANAGE_PAYMENT_METHODS)
        )
    else:
        gateway = _gateway_of_stored_card(account, source.payment_method_id)
    customer = _customer(gateway, account) if save or new_card is None else ""
    begun = card_payment_begin(
        invoice_id=invoice_id,
        access=access,
        source=source,
        new_card_token=new_card,
        idempotency_key=idempotency_key,
    )
    if isinstance(begun, PaymentOutcome):
        return begun
    tx, gateway, token = begun
    result = _charge(gateway, tx, token, return_url=return_url, customer=customer, save=save)
    if result is None:
        return PaymentOutcome("processing", PROCESSING_MESSAGE, tx)
    return card_payment_record(
        tx.pk, result, card_to_save=new_card if save else None, request=request
    )


def _apply_credit_first(
    invoice_id: int,
    access: Access,
    idempotency_key: str,
    request: HttpRequest | None,
) -> PaymentOutcome | None:
    """The credit part of "apply credit, then pay the rest": its outcome, or None when
    this form's credit was applied already (the same form submitted again)."""
    credit_key = f"{idempotency_key[:57]}-credit"
    with transaction.atomic():
        invoice, current = _invoice_for(invoice_id, access, lock=True)
        payer = current.user
        if _replayed(invoice, idempotency_key) is not None:
            return None  # the form's payment was made: its credit part was applied before
        applied = Transaction.objects.filter(idempotency_key=credit_key).first()
        if applied is not None:
            if applied.invoice_id != invoice.pk:
                raise BillingError(
                    "This payment form was already used: reload the page to try again."
                )
            return None
        _check_payable(invoice, PayWithCredit())
        if is_combined(invoice):
            raise BillingError(
                "Credit cannot pay part of a combined payment: pay it in full by card or "
                "bank transfer, or pay the invoices one by one."
            )
        return _pay_with_credit(invoice, payer, _tx_fields(invoice, payer, credit_key), request)


def _pay_with_credit(
    invoice: Invoice, payer: User, fields: dict[str, object], request: HttpRequest | None
) -> PaymentOutcome:
    acct = _lock_account(invoice.account_id)
    amount = min(acct.credit_balance, invoice.balance)
    if amount <= 0:
        raise BillingError("There is no credit balance to pay with.")
    if amount < invoice.balance and is_combined(invoice):
        # Paid in part, it would pay none of its invoices and hold the money meanwhile.
        raise BillingError(
            f"Your credit balance ({acct.credit_balance} {invoice.currency}) does not cover "
            "this combined payment: pay it by card or bank transfer, or pay the invoices "
            "one by one."
        )
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
        **fields,
        status=Transaction.Status.SUCCEEDED,
        gateway=gateways.CREDIT,
        amount=amount,
        reference=f"credit-{entry.pk}",
        method_label="Credit balance",
    )
    _apply_payment(invoice, amount)
    _payment_recorded(invoice, tx, actor=payer, request=request)
    return _paid_outcome(invoice, tx, amount)


def _announce_transfer(
    invoice: Invoice, payer: User, fields: dict[str, object], request: HttpRequest | None
) -> PaymentOutcome:
    # Nothing moves at a bank: the invoice waits for staff to see the money arrive.
    amount = invoice.balance
    tx = Transaction.objects.create(
        **fields,
        status=Transaction.Status.PENDING,
        gateway=gateways.BANK_TRANSFER.code,
        amount=amount,
        reference=f"INV-{invoice.number}",
        method_label="Bank transfer",
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
        "pending", "Thank you: the invoice is marked as awaiting your bank transfer.", tx
    )


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


# --- a caller's idempotency key (the API's Idempotency-Key) ------------------------------


def payment_request_claim(*, key: str, digest: str) -> PaymentRequest:
    """Record that the payment with idempotency key `key` is asked for by the request
    `digest` (a hash of what it asks), committed at once, before anything is paid: the
    first request to come records it. The same key with another digest is refused
    (``IdempotencyKeyReused``) and changes nothing; with the same digest the record is
    returned, with the answer given first if there was one (to answer it again)."""
    try:
        with transaction.atomic():
            asked, _ = PaymentRequest.objects.get_or_create(key=key, defaults={"digest": digest})
    except IntegrityError:  # recorded at this very moment by the same key's other request
        asked = PaymentRequest.objects.get(key=key)
    if asked.digest != digest:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used with another request: nothing was "
            "paid. Send a new key for a new payment."
        )
    return asked


def payment_requests_prune(*, now: datetime | None = None) -> int:
    """Retention (the worker's hourly turn): forget the Idempotency-Key records older than
    ``RETENTION_PAYMENT_REQUEST_DAYS`` (30). Until then a retry with the same key gets the
    first answer again, and the same key with another request is refused; after, the key
    is new again, but a retry of the same payment still pays nothing more (the payment's
    own idempotency key is derived from it and kept with the payment). How many went."""
    days = int(getattr(settings, "RETENTION_PAYMENT_REQUEST_DAYS", 30))
    cutoff = (now or timezone.now()) - timedelta(days=days)
    return delete_in_batches(PaymentRequest.objects.filter(created_at__lt=cutoff))


def payment_request_answered(*, key: str, status: int, answer: dict[str, object]) -> None:
    """Keep the final answer to the request that asked for payment `key`, the first one
    only (a request answered again replays it)."""
    PaymentRequest.objects.filter(key=key, answer_status__isnull=True).update(
        answer_status=status, answer=answer
    )
