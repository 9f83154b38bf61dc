"""Stripe webhooks: the endpoint Stripe posts events to, their signatures, and handlers
that process each event exactly once.

**Signatures.** Stripe signs each delivery with the endpoint's secret
(STRIPE_WEBHOOK_SECRET): ``Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]``,
where each ``v1`` is HMAC-SHA256 of ``"<t>.<raw body>"`` (several while a secret is
being rolled). The stripe library's ``WebhookSignature.verify_header`` checks them
(constant-time compare, any one ``v1`` may match) and refuses a timestamp more than
TOLERANCE_SECONDS old; a timestamp as far in the future is refused here too. A bad
signature or a stale timestamp is answered 400 and nothing is processed or stored.

**Once only, any order.** Each processed event is stored as a ``StripeEvent`` (unique
event id) in the same transaction as what it did: a retried or duplicated event finds
its id and is answered 200 without doing anything again; an event whose processing
failed stored nothing, so Stripe's retry processes it. Order does not matter because
settling a payment is itself exactly-once (``services.card_payment_record``: a
processing payment is settled once; a success also settles one recorded as failed; a
success is never undone by a late failure). A failed attempt is recorded as failed, with
Stripe's reason (a decline's message included), since the customer may still complete
the same intent with another card and a success is recorded over a failed payment.

**Events.** payment_intent.succeeded / payment_failed settle the payment whose
idempotency key the intent carries (metadata ``transaction``); payment_intent.processing
leaves it processing; charge.refunded records each refund of the charge once, whoever
made it (``refunds.refund_seen``: a back-office refund recorded by its request or here,
whichever is first; one made in Stripe's dashboard); setup_intent.succeeded stores the
saved card on the customer's account once (keyed by the PaymentMethod id: nothing more if
the card page's return stored it first); charge.dispute.created is kept and logged as an
error naming the invoice, for staff to answer in Stripe's dashboard. A payment whose
owner asked to keep the card (setup_future_usage: Stripe attached it to the account's
customer) also stores that card once, whichever of this event, the browser's return or
the worker comes first. The refunds, a saved card and a payment's kept card need an
answer from Stripe first (the refunds of the charge, the card's brand and last four): it
is asked before the event's transaction, with none open (``PREPARED_HANDLERS``). Any
other event type is answered 200 and ignored.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from clientarea.accounts.policy import public
from clientarea.core.outside import OutsideRefused, outside_call

from . import refunds
from .gateways import CardToken, ChargeResult, ChargeStatus
from .models import PaymentMethod, StripeCustomer, StripeEvent, Transaction
from .stripe_gateway import (
    CardSummary,
    RefundResult,
    StripeAmountError,
    _ref,
    card_brand,
    intent_from_stripe,
    refund_from_stripe,
    to_minor,
)

if TYPE_CHECKING:
    from clientarea.accounts.models import Account

logger = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300
GATEWAY_CODE = "stripe"


class WebhookRefused(Exception):
    """Not a genuine, fresh event from Stripe: answered 400, nothing done."""


def verify_event(payload: bytes, header: str | None, *, now: float | None = None) -> dict[str, Any]:
    """The event in `payload`, once its `header` (Stripe-Signature) proves Stripe sent it
    within TOLERANCE_SECONDS. Raises WebhookRefused otherwise."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        logger.error("A Stripe webhook arrived but STRIPE_WEBHOOK_SECRET is not set.")
        raise WebhookRefused("The webhook endpoint is not configured.")
    if not header:
        raise WebhookRefused("No Stripe-Signature header.")
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError:
        raise WebhookRefused("The signature does not match, or the event is too old.") from None
    except (ValueError, UnicodeDecodeError):
        raise WebhookRefused("The signature header cannot be read.") from None
    # verify_header refuses old timestamps only; one far ahead of our clock is no fresher.
    stamp = re.search(r"(?:^|,)t=(\d+)", header)
    if stamp is None or int(stamp.group(1)) > (now or time.time()) + TOLERANCE_SECONDS:
        raise WebhookRefused("The event's timestamp is outside the tolerance.")
    try:
        event = json.loads(payload)
    except ValueError:
        raise WebhookRefused("The body is not JSON.") from None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(event.get("data"), dict)
        or not isinstance(event["data"].get("object"), dict)
    ):
        raise WebhookRefused("The body is not a Stripe event.")
    return event


# --- settling payments -------------------------------------------------------------------


def payment_settle_from_gateway(
    transaction_key: str,
    status: ChargeStatus,
    reference: str,
    message: str = "",
    *,
    amount_minor: int | None = None,
    currency: str = "",
) -> str:
    """Settle the processing Stripe payment whose idempotency key is `transaction_key`
    with the processor's final answer, exactly once, through the service that also
    records the paying request's and the reconciliation job's answers
    (``services.card_payment_record``). When Stripe says how much it took, the amount
    must be the payment's. Returns what was done, for the event's record."""
    from .services import card_payment_record

    tx = _payment_of_intent(transaction_key, reference)
    if tx is None:
        return "no payment of ours"
    if tx.gateway != GATEWAY_CODE:
        logger.error("Stripe event for payment %s of gateway %r ignored", tx.pk, tx.gateway)
        return f"payment {tx.pk} is not a Stripe payment: ignored"
    if amount_minor is not None:
        try:
            expected = to_minor(tx.amount, tx.currency)
        except StripeAmountError:
            expected = None
        if expected != amount_minor or currency.lower() != tx.currency.lower():
            logger.error(
                "Stripe event for payment %s: %s %s at Stripe, %s %s here; not settled",
                tx.pk,
                amount_minor,
                currency,
                tx.amount,
                tx.currency,
            )
            return f"payment {tx.pk}: amount differs from Stripe's, not settled"
    outcome = card_payment_record(tx.pk, ChargeResult(status, reference, message))
    return f"payment {tx.pk}: {outcome.status}"


# --- handlers ----------------------------------------------------------------------------


def _settle_intent(obj: dict[str, Any], status: ChargeStatus) -> str:
    intent = intent_from_stripe(obj)
    key = str((intent.metadata or {}).get("transaction", ""))
    if status == ChargeStatus.SUCCEEDED:
        return payment_settle_from_gateway(
            key,
            ChargeStatus.SUCCEEDED,
            intent.id,
            amount_minor=int(obj.get("amount_received") or intent.amount),
            currency=intent.currency,
        )
    result = intent.charge_result() or ChargeResult(
        ChargeStatus.FAILED, intent.id, "The card was declined."
    )
    return payment_settle_from_gateway(key, result.status, intent.id, result.message)


def _payment_of_intent(transaction_key: str, reference: str) -> Transaction | None:
    """Our payment an intent was made for: by its idempotency key (the intent's metadata
    ``transaction``), else by the intent id."""
    tx = (
        Transaction.objects.filter(
            idempotency_key=transaction_key, kind=Transaction.Kind.PAYMENT
        ).first()
        if transaction_key
        else None
    )
    if tx is None and reference:
        tx = Transaction.objects.filter(
            gateway=GATEWAY_CODE, reference=reference, kind=Transaction.Kind.PAYMENT
        ).first()
    return tx


def prepare_payment_intent_succeeded(obj: dict[str, Any]) -> tuple[int, CardToken] | None:
    """The card the payment kept for later (the owner ticked "save this card": the
    intent has setup_future_usage and a customer), asked of Stripe before the event's
    transaction; None, asking nothing, for a payment that keeps no card, one not ours, a
    payer who may not store cards, or a card stored already (the return page first)."""
    intent = intent_from_stripe(obj)
    if not intent.setup_future_usage or not intent.customer or not intent.payment_method:
        return None
    tx = _payment_of_intent(str((intent.metadata or {}).get("transaction", "")), intent.id)
    if tx is None or tx.gateway != GATEWAY_CODE:
        return None
    if PaymentMethod.objects.filter(
        account_id=tx.account_id, gateway=GATEWAY_CODE, token=intent.payment_method
    ).exists():
        return None
    from .services import payment_kept_card

    try:
        card = payment_kept_card(tx, reference=intent.id)
    except OutsideRefused:
        # Stripe refused to say (the card is gone): the payment is settled all the same.
        logger.exception("The card kept by Stripe payment %s could not be read", tx.pk)
        return None
    return (tx.pk, card) if card is not None else None


def on_payment_intent_succeeded(kept: tuple[int, CardToken] | None, obj: dict[str, Any]) -> str:
    """The payment settled once; then the card its owner asked to keep (``kept``, read
    from Stripe by ``prepare_payment_intent_succeeded``) stored on the account once, in
    the same transaction, if the payment is recorded as succeeded."""
    from .services import payment_kept_card_store

    result = _settle_intent(obj, ChargeStatus.SUCCEEDED)
    if kept is None:
        return result
    tx_id, card = kept
    method = payment_kept_card_store(tx_id, card)
    return f"{result}; card {card.token}: " + (
        f"stored ({method.pk})" if method is not None else "not stored"
    )


def on_payment_intent_payment_failed(obj: dict[str, Any]) -> str:
    return _settle_intent(obj, ChargeStatus.FAILED)


def on_payment_intent_processing(obj: dict[str, Any]) -> str:
    # Not final (a bank debit, a slow network): the payment stays processing until the
    # succeeded or payment_failed event, or the reconciliation job, settles it.
    return "still processing"


def _our_payment(intent_id: str) -> Transaction | None:
    if not intent_id:
        return None
    return (
        Transaction.objects.filter(
            kind=Transaction.Kind.PAYMENT, gateway=GATEWAY_CODE, reference=intent_id
        )
        .select_related("invoice", "account")
        .first()
    )


def prepare_charge_refunded(obj: dict[str, Any]) -> list[RefundResult]:
    """The refunds of the refunded charge's payment, as Stripe lists them (a charge
    object carries them only in old API versions): none asked for a payment not ours."""
    listed = (
        (obj.get("refunds") or {}).get("data") if isinstance(obj.get("refunds"), dict) else None
    )
    if isinstance(listed, list) and not (obj.get("refunds") or {}).get("has_more"):
        return [refund_from_stripe(r) for r in listed]
    intent_id = _ref(obj.get("payment_intent"))
    if _our_payment(intent_id) is None:
        return []
    stripe = refunds.gateway()
    return outside_call(lambda: stripe.refunds_of(intent_id), retry_uncertain=True)


def on_charge_refunded(found: list[RefundResult], obj: dict[str, Any]) -> str:
    """Each refund of the charge recorded once: one made from the back office (recorded
    by the request that made it, or here first), one made in Stripe's dashboard."""
    intent_id = _ref(obj.get("payment_intent"))
    if not found:
        return f"refunded {obj.get('amount_refunded')} {obj.get('currency')} of {intent_id}: " + (
            "no payment of ours" if _our_payment(intent_id) is None else "no refund listed"
        )
    return "; ".join(refunds.refund_seen(refund) for refund in reversed(found))[:300]


def on_charge_dispute_created(obj: dict[str, Any]) -> str:
    """A customer disputed a payment with their bank: staff must answer it in Stripe's
    dashboard before Stripe's deadline, so the operators' log gets an error naming the
    invoice; the event is kept (back office: Stripe events)."""
    intent_id = _ref(obj.get("payment_intent"))
    payment = _our_payment(intent_id)
    where = (
        f"invoice #{payment.invoice.number} of {payment.account}"
        if payment is not None
        else "a payment not made here"
    )
    logger.error(
        "Stripe dispute %s opened on %s (%s, %s %s, reason %s): answer it in Stripe's "
        "dashboard before its deadline.",
        obj.get("id"),
        intent_id or _ref(obj.get("charge")),
        where,
        obj.get("amount"),
        obj.get("currency"),
        obj.get("reason"),
    )
    return f"dispute {obj.get('id')} opened on {where}: {obj.get('reason')}"


def _setup_account(obj: dict[str, Any]) -> tuple[Account | None, str]:
    customer = _ref(obj.get("customer"))
    row = (
        StripeCustomer.objects.select_related("account").filter(customer_id=customer).first()
        if customer
        else None
    )
    return (row.account if row else None), _ref(obj.get("payment_method"))


def prepare_setup_intent_succeeded(obj: dict[str, Any]) -> CardSummary | None:
    """What may be stored of the saved card (brand, last four, expiry), asked of Stripe
    unless the card is stored already or the customer is not one of ours."""
    account, method_id = _setup_account(obj)
    if account is None or not method_id:
        return None
    if PaymentMethod.objects.filter(
        account=account, gateway=GATEWAY_CODE, token=method_id
    ).exists():
        return None
    stripe = refunds.gateway()
    return outside_call(lambda: stripe.payment_method_retrieve(method_id), retry_uncertain=True)


def on_setup_intent_succeeded(card: CardSummary | None, obj: dict[str, Any]) -> str:
    """The card saved by a SetupIntent stored on its account once: if the card page's
    return stored it first, nothing more (keyed by the PaymentMethod id per account)."""
    from .services import card_store_once

    account, method_id = _setup_account(obj)
    if account is None or not method_id:
        return f"card {method_id or '?'}: no customer of ours"
    stored = PaymentMethod.objects.filter(
        account=account, gateway=GATEWAY_CODE, token=method_id
    ).first()
    if stored is not None:
        return f"card {method_id}: already stored ({stored.pk})"
    if card is None:
        return f"card {method_id}: not known at Stripe, not stored"
    if card.customer != _ref(obj.get("customer")):
        # Detached since (removed by the owner meanwhile): not stored again.
        return f"card {method_id}: no longer the customer's, not stored"
    method = card_store_once(
        account,
        None,
        GATEWAY_CODE,
        CardToken(method_id, card_brand(card.brand), card.last4, card.exp_month, card.exp_year),
    )
    return f"card {method_id}: stored ({method.pk})"


HANDLERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "payment_intent.payment_failed": on_payment_intent_payment_failed,
    "payment_intent.processing": on_payment_intent_processing,
    "charge.dispute.created": on_charge_dispute_created,
}
# Events whose handling needs something from Stripe first: (prepare, handle). `prepare`
# asks Stripe with no transaction open (core.outside), before the event's transaction;
# if Stripe cannot answer, nothing is stored and the event is answered 503 (Stripe
# delivers it again). `handle(found, obj)` gets what `prepare` found, inside the
# transaction.
PREPARED_HANDLERS: dict[str, tuple[Callable[[dict[str, Any]], Any], Callable[..., str]]] = {
    "payment_intent.succeeded": (prepare_payment_intent_succeeded, on_payment_intent_succeeded),
    "charge.refunded": (prepare_charge_refunded, on_charge_refunded),
    "setup_intent.succeeded": (prepare_setup_intent_succeeded, on_setup_intent_succeeded),
}


def event_process(event: dict[str, Any]) -> tuple[str, str]:
    """Process a verified event once: ("processed" | "duplicate" | "ignored", result)."""
    handler = HANDLERS.get(event["type"])
    prepared = PREPARED_HANDLERS.get(event["type"])
    if handler is None and prepared is None:
        return "ignored", f"{event['type']} is not handled"
    obj = event["data"]["object"]
    if prepared is not None:
        if StripeEvent.objects.filter(event_id=event["id"][:255]).exists():
            return "duplicate", "already processed"
        found = prepared[0](obj)
        handler = functools.partial(prepared[1], found) if handler is None else handler
    assert handler is not None
    created = event.get("created")
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = StripeEvent.objects.create(
                    event_id=event["id"][:255],
                    type=event["type"][:100],
                    object_id=str(obj.get("id", ""))[:255],
                    livemode=bool(event.get("livemode")),
                    created=datetime.fromtimestamp(
                        int(created) if isinstance(created, int) else time.time(), tz=UTC
                    ),
                )
        except IntegrityError:
            return "duplicate", "already processed"
        result = handler(obj)
        record.result = result[:300]
        record.save(update_fields=["result"])
    return "processed", result


@public
@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Stripe's deliveries: 2xx once an event is processed (or was already, or is of a
    type we ignore), 400 for a delivery that is not a genuine fresh event, and 503 (never
    a 500) when processing failed: nothing was stored, so Stripe delivers it again."""
    try:
        event = verify_event(request.body, request.headers.get("Stripe-Signature"))
    except WebhookRefused as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    try:
        state, result = event_process(event)
    except Exception:
        logger.exception("Processing Stripe event %s (%s) failed", event["id"], event["type"])
        return JsonResponse({"error": "Not processed; deliver it again later."}, status=503)
    return JsonResponse({"id": event["id"], "state": state, "result": result})
