"""Card payments, in the three steps that keep the card processor outside any database
transaction (see ``payments.invoice_pay``): begin (recorded as processing), charge, record
the answer; the return from the card holder's bank (3-D Secure) and its cancellation; the
card a payment kept for later."""

from __future__ import annotations

import datetime
import logging
import re
from dataclasses import replace
from typing import Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from clientarea.accounts.models import Account
from clientarea.accounts.permissions import OwnerPower
from clientarea.accounts.policy import Access, may_use_owner_power
from clientarea.audit.services import audit_record
from clientarea.core.outside import (
    OutsideError,
    OutsideRefused,
    OutsideUnavailable,
    OutsideUncertain,
    assert_no_transaction,
    outside_call,
)

from .. import gateways
from ..gateways import ChargeResult, ChargeStatus, GatewayError
from ..models import ZERO, Invoice, PaymentMethod, Transaction
from ._common import (
    _apply_payment,
    _card_expired,
    _card_from_token,
    _check_payable,
    _invoice_for,
    _keep_surplus,
    _lock_invoice,
    _new_card_gateway,
    _paid_outcome,
    _payment_recorded,
    _processing_payment,
    _replayed,
    _stored_card_gateway,
    _tx_fields,
)
from .outcomes import (
    ALREADY_PROCESSING,
    AWAITING_AUTHENTICATION,
    NEVER_RECEIVED_MESSAGE,
    NOT_CHARGED,
    PROCESSING_MESSAGE,
    BillingError,
    PaymentOutcome,
    PayWithNewCard,
    PayWithStoredMethod,
)
from .payment_methods import _store_card, card_store_once

logger = logging.getLogger(__name__)


def card_for_saving(token: str) -> gateways.CardToken:
    """What the card processor says of the card `token` a payment will keep (asked again
    when the browser returns from the card holder's bank)."""
    return _card_from_token(_new_card_gateway(), token)


def _gateway_of_stored_card(account: Account, payment_method_id: int) -> gateways.PaymentGateway:
    code = (
        PaymentMethod.objects.filter(account=account, pk=payment_method_id)
        .values_list("gateway", flat=True)
        .first()
    )
    if code is None:
        raise BillingError("Choose one of this account's stored cards.")
    try:
        return gateways.get_gateway(code)
    except GatewayError:  # a card from a gateway no longer configured
        raise BillingError("This card can no longer be used: choose another way to pay.") from None


def card_payment_begin(
    *,
    invoice_id: int,
    access: Access,
    source: PayWithStoredMethod | PayWithNewCard,
    new_card_token: gateways.CardToken | None,
    idempotency_key: str,
) -> PaymentOutcome | tuple[Transaction, gateways.PaymentGateway, str]:
    """Step A: record the card payment as processing, committed, before any charge, for
    the person of `access` (the policy asked again under the invoice lock)."""
    gateway: gateways.PaymentGateway
    with transaction.atomic():
        invoice, current = _invoice_for(invoice_id, access, lock=True)
        payer = current.user
        replay = _replayed(invoice, idempotency_key)
        if replay is not None:
            return replay
        _check_payable(invoice, source)
        if isinstance(source, PayWithStoredMethod):
            method = PaymentMethod.objects.filter(
                account=invoice.account, pk=source.payment_method_id
            ).first()
            if method is None:
                raise BillingError("Choose one of this account's stored cards.")
            if _card_expired(method.exp_month, method.exp_year):
                raise BillingError(f"The {method.label} has expired.")
            if method.gateway == gateways.SANDBOX.code and not gateways.is_sandbox():
                # A test card kept from a demonstration moves no money: never a payment
                # once the sandbox no longer takes the cards.
                raise BillingError(
                    f"The {method.label} was a test card and can no longer be used: choose "
                    "another way to pay."
                )
            try:
                gateway = gateways.get_gateway(method.gateway)
            except GatewayError as exc:  # a card from a gateway no longer configured
                raise BillingError(
                    f"The {method.label} can no longer be used: choose another way to pay."
                ) from exc
            token, method_label = method.token, method.label
        else:
            assert new_card_token is not None
            if _card_expired(new_card_token.exp_month, new_card_token.exp_year):
                raise BillingError("This card has expired.")
            gateway, token = _new_card_gateway(), new_card_token.token
            method_label = new_card_token.label
        grace = datetime.timedelta(seconds=settings.PENDING_CHANGE_GRACE_SECONDS)
        try:
            with transaction.atomic():
                tx = Transaction.objects.create(
                    **_tx_fields(invoice, payer, idempotency_key),
                    status=Transaction.Status.PROCESSING,
                    gateway=gateway.code,
                    amount=invoice.balance,
                    method_label=method_label,
                    next_check_at=timezone.now() + grace,
                )
        except IntegrityError:
            # The database's own guard (one processing payment per invoice, one use of
            # a key), for whatever reached it without the invoice lock.
            if _processing_payment(invoice) is not None:
                raise BillingError(ALREADY_PROCESSING) from None
            raise BillingError(
                "This payment form was already used: reload the page to try again."
            ) from None
    return tx, gateway, token


def _charge(
    gateway: gateways.PaymentGateway,
    tx: Transaction,
    token: str | None,
    *,
    return_url: str = "",
    customer: str = "",
    save: bool = False,
) -> ChargeResult | None:
    """Step B: ask the processor to charge, with no transaction open and no lock held.
    Returns its answer, a FAILED result when nothing can have been charged, or None when
    the charge may have been made but no answer came (the payment stays processing)."""
    assert_no_transaction()
    uncertain = False

    def attempt() -> ChargeResult:
        nonlocal uncertain
        assert_no_transaction()
        try:
            return gateway.charge(
                amount=tx.amount,
                currency=tx.currency,
                token=token,
                idempotency_key=tx.idempotency_key,
                description=f"INV-{tx.invoice.number}",
                return_url=return_url,
                customer=customer,
                save_card=save,
            )
        except OutsideUncertain:
            uncertain = True
            raise

    try:
        # The same idempotency key makes a retried charge safe, even after no answer.
        return outside_call(attempt, retry_uncertain=True)
    except OutsideUnavailable as exc:
        if uncertain:  # an earlier attempt may have reached the processor
            return None
        return ChargeResult(ChargeStatus.FAILED, "", str(exc) or "The processor was not reached.")
    except OutsideUncertain:
        return None
    except OutsideRefused as exc:  # GatewayError included: the processor said no
        return ChargeResult(ChargeStatus.FAILED, "", str(exc))


def card_payment_record(
    tx_id: int,
    result: ChargeResult,
    *,
    card_to_save: gateways.CardToken | None = None,
    request: HttpRequest | None = None,
    reconciled: bool = False,
) -> PaymentOutcome:
    """Step C: record the processor's answer about a processing card payment, exactly
    once, whoever learnt it (the request that paid, or the reconciliation job).

    The invoice is locked first, then the transaction re-read under it: the request and
    the worker never both apply a result. A success is recorded even on a payment given
    up on or declined earlier (the processor says the money was taken, so it is never
    lost). If the invoice no longer needs all of it (paid meanwhile by credit or a
    confirmed transfer, or cancelled), the rest goes to the account's credit balance.

    An answer that is not final yet (PENDING, or REQUIRES_ACTION: the card holder must
    authenticate) leaves the payment processing, with the processor's id of it kept as
    its reference, so the return from 3-D Secure, a webhook or the worker settles it."""
    invoice_pk = Transaction.objects.values_list("invoice_id", flat=True).get(pk=tx_id)
    with transaction.atomic():
        invoice = _lock_invoice(invoice_pk)
        tx = (
            Transaction.objects.select_for_update(of=("self",))
            .select_related("payer")
            .get(pk=tx_id)
        )
        if result.status in (ChargeStatus.PENDING, ChargeStatus.REQUIRES_ACTION):
            return _still_processing(tx, result)
        settles_from = [Transaction.Status.PROCESSING]
        if result.status == ChargeStatus.SUCCEEDED:
            settles_from += [Transaction.Status.FAILED, Transaction.Status.DECLINED]
        if tx.status not in settles_from:
            return _settled_outcome(invoice, tx)
        tx.next_check_at = None
        tx.confirmed_at = timezone.now()
        changes: dict[str, object] = {"amount": str(tx.amount), "gateway": tx.gateway}
        if reconciled:
            changes["settled_by"] = "reconciliation"
        if result.status == ChargeStatus.SUCCEEDED:
            tx.status = Transaction.Status.SUCCEEDED
            tx.reference = result.reference[:100]
            applied = min(tx.amount, invoice.balance if invoice.is_payable else ZERO)
            surplus = tx.amount - applied
            tx.message = (
                f"{surplus} {tx.currency} was no longer due and went to the credit balance."
                if surplus > 0
                else ""
            )
            tx.save()
            if applied > 0:
                _apply_payment(invoice, applied)
            if surplus > 0:
                _keep_surplus(invoice, tx, surplus)
            _payment_recorded(invoice, tx, actor=tx.payer, request=request, changes=changes)
            if (
                card_to_save is not None
                and tx.payer is not None
                # only the owner stores cards
                and may_use_owner_power(
                    tx.payer, invoice.account, OwnerPower.MANAGE_PAYMENT_METHODS
                )
            ):
                _store_card(invoice.account, tx.payer, card_to_save, request)
            return _paid_outcome(invoice, tx, applied)
        declined = result.status == ChargeStatus.DECLINED
        tx.status = Transaction.Status.DECLINED if declined else Transaction.Status.FAILED
        if result.reference:  # the processor's id of the refused attempt, for the list
            tx.reference = result.reference[:100]
        tx.message = (result.message or ("The card was declined." if declined else ""))[:300]
        tx.save()
        audit_record(
            action="invoice.payment_declined" if declined else "invoice.payment_failed",
            actor=tx.payer,
            account=invoice.account,
            target=invoice,
            changes={**changes, "transaction": tx.pk, "reason": tx.message},
            request=request,
        )
        if declined:
            return PaymentOutcome("declined", tx.message, tx)
        return PaymentOutcome("failed", _failed_message(tx), tx)


def _still_processing(tx: Transaction, result: ChargeResult) -> PaymentOutcome:
    """Record what the processor said of a payment it has not decided yet (under the
    invoice lock, in card_payment_record's transaction)."""
    if tx.status != Transaction.Status.PROCESSING:
        return _settled_outcome(tx.invoice, tx)
    if result.reference:
        tx.reference = result.reference[:100]
    awaiting = result.status == ChargeStatus.REQUIRES_ACTION
    tx.message = AWAITING_AUTHENTICATION if awaiting else ""
    tx.save(update_fields=["reference", "message"])
    if awaiting and result.redirect_url:
        return PaymentOutcome(
            "requires_action",
            "Your bank asks you to confirm this payment.",
            tx,
            redirect_url=result.redirect_url,
        )
    return PaymentOutcome("processing", PROCESSING_MESSAGE, tx)


def _settled_outcome(invoice: Invoice, tx: Transaction) -> PaymentOutcome:
    """What became of a payment someone else settled first."""
    if tx.status == Transaction.Status.SUCCEEDED:
        status: Literal["paid", "partial"] = (
            "paid" if invoice.status == Invoice.Status.PAID else "partial"
        )
        return PaymentOutcome(status, "This payment was already recorded.", tx)
    if tx.status == Transaction.Status.DECLINED:
        return PaymentOutcome("declined", tx.message or "The card was declined.", tx)
    return PaymentOutcome("failed", _failed_message(tx), tx)


def _failed_message(tx: Transaction) -> str:
    reason = tx.message.strip()
    if reason and not reason.endswith("."):
        reason += "."
    return " ".join(p for p in (NOT_CHARGED, reason, "Please try again later.") if p)


PROCESSOR_REFERENCE_RE = re.compile(r"^[A-Za-z0-9_]{1,100}$")


def _payment_of(invoice_id: int, account: Account, reference: str) -> Transaction:
    if not PROCESSOR_REFERENCE_RE.match(reference or ""):
        raise BillingError("This payment is not one of this invoice's: nothing was changed.")
    tx = (
        Transaction.objects.select_related("invoice")
        .filter(
            invoice_id=invoice_id,
            account=account,
            kind=Transaction.Kind.PAYMENT,
            reference=reference,
        )
        .exclude(reference="")
        .order_by("-pk")
        .first()
    )
    if tx is None:
        raise BillingError("This payment is not one of this invoice's: nothing was changed.")
    return tx


def card_payment_return(
    *,
    invoice_id: int,
    access: Access,
    reference: str,
    card_to_save: gateways.CardToken | None = None,
    request: HttpRequest | None = None,
) -> PaymentOutcome:
    """The browser is back from the card holder's bank (3-D Secure): ask the processor
    what became of the payment `reference` of this invoice and record it, once (a
    webhook or the worker may have recorded it first). For the person of `access`
    (Invoices, the invoice in reach), asked before anything is read or asked outside."""
    if not PROCESSOR_REFERENCE_RE.match(reference or ""):
        # Nothing is read for a reference no processor makes (what the page's query held).
        raise BillingError("This payment is not one of this invoice's: nothing was changed.")
    _, current = _invoice_for(invoice_id, access)
    account = current.account
    tx = _payment_of(invoice_id, account, reference)
    if tx.status != Transaction.Status.PROCESSING:
        if (
            card_to_save is not None
            and tx.status == Transaction.Status.SUCCEEDED
            and not PaymentMethod.objects.filter(account=account, token=card_to_save.token).exists()
        ):
            # Settled first by Stripe's webhook or the worker: the card its payer asked
            # to keep is stored now, once (if the processor really kept it).
            payment_card_keep(tx, request=request)
        return _settled_outcome(tx.invoice, tx)
    gateway = gateways.get_gateway(tx.gateway)
    try:
        result = outside_call(
            lambda: gateway.charge_status(tx.idempotency_key, tx.reference),
            retry_uncertain=True,
        )
    except OutsideError:
        return PaymentOutcome("processing", PROCESSING_MESSAGE, tx)
    if result is None:
        return PaymentOutcome("processing", PROCESSING_MESSAGE, tx)
    return card_payment_record(tx.pk, result, card_to_save=card_to_save, request=request)


def card_payment_cancel(
    *, invoice_id: int, access: Access, request: HttpRequest | None = None
) -> PaymentOutcome:
    """Give up on this invoice's card payment that waits for the card holder to
    authenticate (they left the bank's page): the processor cancels it, or tells us it
    went through after all, which is then recorded as paid. For the person of `access`
    (Invoices, the invoice in reach)."""
    _, current = _invoice_for(invoice_id, access)
    account, actor = current.account, current.user
    tx = (
        Transaction.objects.select_related("invoice")
        .filter(invoice_id=invoice_id, account=account, status=Transaction.Status.PROCESSING)
        .first()
    )
    if tx is None:
        raise BillingError("No payment of this invoice is waiting any more.")
    if tx.message != AWAITING_AUTHENTICATION or not tx.reference:
        raise BillingError(
            "This payment is with the card processor and cannot be cancelled: the invoice "
            "will update when the processor confirms it."
        )
    gateway = gateways.get_gateway(tx.gateway)
    try:
        result = outside_call(
            lambda: gateway.charge_cancel(tx.idempotency_key, tx.reference),
            retry_uncertain=True,
        )
    except OutsideError:
        raise BillingError(
            "The card processor could not be reached, so the payment is still waiting; "
            "try again in a moment."
        ) from None
    if result is None:
        result = ChargeResult(ChargeStatus.FAILED, tx.reference, NEVER_RECEIVED_MESSAGE)
    elif result.status in (ChargeStatus.PENDING, ChargeStatus.REQUIRES_ACTION):
        raise BillingError(ALREADY_PROCESSING)
    elif result.status == ChargeStatus.FAILED and not result.message:
        result = replace(result, message="The payment was cancelled.")
    outcome = card_payment_record(tx.pk, result, request=request)
    if outcome.status in ("declined", "failed"):
        audit_record(
            action="invoice.payment_cancelled",
            actor=actor,
            account=account,
            target=tx.invoice,
            changes={"transaction": tx.pk},
            request=request,
        )
    return outcome


def payment_kept_card(tx: Transaction, *, reference: str = "") -> gateways.CardToken | None:
    """The card the processor kept on the account for later when payment `tx` (its
    intent `reference`, by default the recorded one) succeeded: its payer asked to keep
    it (Stripe: the intent's setup_future_usage) and it is attached to the account's
    customer. None when there is no such card, the gateway keeps none, or the payer may
    not store cards (only the owner does: a forged "save" keeps nothing). An outside
    call: no transaction may be open; raises the outside errors."""
    assert_no_transaction()
    reference = reference or tx.reference
    if tx.kind != Transaction.Kind.PAYMENT or not reference or tx.payer is None:
        return None
    account = tx.account
    if not may_use_owner_power(tx.payer, account, OwnerPower.MANAGE_PAYMENT_METHODS):
        return None
    kept = getattr(_stored_card_gateway(tx.gateway), "charge_kept_card", None)
    if kept is None:  # the sandbox: its card is stored with the payment's answer
        return None
    key = tx.idempotency_key
    card: gateways.CardToken | None = outside_call(
        lambda: kept(account=account, idempotency_key=key, reference=reference),
        retry_uncertain=True,  # reads only
    )
    return card


def payment_kept_card_store(
    tx_id: int, card: gateways.CardToken, *, request: HttpRequest | None = None
) -> PaymentMethod | None:
    """Store `card` (``payment_kept_card``) on the account of payment `tx_id` once it is
    recorded as succeeded, if its payer still may store cards: once, whoever comes first
    (Stripe's webhook, the return page, the worker; one card per account, gateway and
    token). In the caller's transaction (the webhook's event), or its own."""
    with transaction.atomic():
        tx = Transaction.objects.select_related("account", "payer").get(pk=tx_id)
        if (
            tx.status != Transaction.Status.SUCCEEDED
            or tx.payer is None
            or not may_use_owner_power(tx.payer, tx.account, OwnerPower.MANAGE_PAYMENT_METHODS)
        ):
            return None
        return card_store_once(tx.account, tx.payer, tx.gateway, card, request)


def payment_card_keep(
    tx: Transaction, *, request: HttpRequest | None = None
) -> PaymentMethod | None:
    """Both steps, for a payment settled by someone other than Stripe's webhook (which
    does them around its event's transaction). If the processor cannot say now, nothing
    is stored here: its payment_intent.succeeded event stores the card."""
    try:
        card = payment_kept_card(tx)
    except OutsideError:
        logger.warning("The card kept by payment %s could not be read: not stored now", tx.pk)
        return None
    return payment_kept_card_store(tx.pk, card, request=request) if card is not None else None
