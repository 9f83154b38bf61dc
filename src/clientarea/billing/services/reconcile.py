"""The worker's side of card payments: transactions left processing (the answer to the
paying request never came) are claimed one by one and settled with the processor's word.
Refunds use the same loop (``clientarea.billing.refunds``)."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable

from django.conf import settings
from django.utils import timezone

from clientarea.core.outside import OutsideError, assert_no_transaction, outside_call

from .. import gateways
from ..gateways import ChargeResult, ChargeStatus
from ..models import Transaction
from .cards import card_payment_record, payment_card_keep
from .outcomes import AWAITING_AUTHENTICATION, GAVE_UP_MESSAGE, NEVER_RECEIVED_MESSAGE

logger = logging.getLogger(__name__)


def _check_backoff(attempts: int) -> datetime.timedelta:
    return datetime.timedelta(seconds=min(60 * 2**attempts, 3600))


def payment_reconcile(tx: Transaction, *, now: datetime.datetime | None = None) -> str:
    """Ask the processor about one processing payment (no transaction open) and settle
    it: "settled" (its answer recorded), "failed" (never received, or given up on after
    PENDING_CHANGE_GIVE_UP_HOURS) or "processing" (still unknown: asked again later)."""
    assert_no_transaction()
    now_ = now or timezone.now()
    result: ChargeResult | None
    try:
        gateway = gateways.get_gateway(tx.gateway)
        result = outside_call(
            lambda: gateway.charge_status(tx.idempotency_key, tx.reference),
            retry_uncertain=True,
        )
        known = True
    except OutsideError:  # not reached, no answer, or no such gateway any more
        result, known = None, False
    if known and result is None:
        result = ChargeResult(ChargeStatus.FAILED, "", NEVER_RECEIVED_MESSAGE)
    elif result is None or result.status in (ChargeStatus.PENDING, ChargeStatus.REQUIRES_ACTION):
        give_up_at = tx.created_at + datetime.timedelta(hours=settings.PENDING_CHANGE_GIVE_UP_HOURS)
        if now_ < give_up_at:
            if result is not None and result.reference and not tx.reference:
                card_payment_record(tx.pk, result, reconciled=True)  # keep the processor's id
            return "processing"
        # What was recorded when the bank asked for 3-D Secure counts too: a processor
        # may call such a payment merely pending when asked (Stripe's driver does).
        waiting = tx.message == AWAITING_AUTHENTICATION or (
            result is not None and result.status == ChargeStatus.REQUIRES_ACTION
        )
        result = _give_up(tx, waiting) or ChargeResult(ChargeStatus.FAILED, "", GAVE_UP_MESSAGE)
    outcome = card_payment_record(tx.pk, result, reconciled=True)
    if result.status == ChargeStatus.SUCCEEDED and outcome.status in ("paid", "partial"):
        # The answer to the paying request was lost: the card its payer asked to keep
        # (if any) is stored now, as the return page would have.
        payment_card_keep(Transaction.objects.select_related("account", "payer").get(pk=tx.pk))
    return "failed" if outcome.status == "failed" else "settled"


def _give_up(tx: Transaction, waiting_for_customer: bool) -> ChargeResult | None:
    """A payment abandoned while its card holder was asked to authenticate is cancelled
    at the processor, whose final word (a success included) is then recorded; None when
    there is nothing to cancel or the processor cannot say."""
    if not waiting_for_customer or not tx.reference:
        return None
    try:
        gateway = gateways.get_gateway(tx.gateway)
        final = outside_call(
            lambda: gateway.charge_cancel(tx.idempotency_key, tx.reference),
            retry_uncertain=True,
        )
    except OutsideError:
        return None
    if final is None or final.status in (ChargeStatus.PENDING, ChargeStatus.REQUIRES_ACTION):
        return None
    return final


def processing_transactions_settle_due(
    *,
    kind: str,
    settle: Callable[[Transaction, datetime.datetime], str],
    noun: str,
    now: datetime.datetime | None = None,
    limit: int = 50,
) -> str:
    """Settle transactions of `kind` left processing past their next check, with
    `settle` (which asks the processor with no transaction open and answers "settled",
    "failed" or "processing"). Each is claimed first by moving its next check forward,
    so two workers never ask about the same one at once; recording is exactly-once
    anyway. Returns a short summary naming `noun`, "" when nothing was due."""
    now_ = now or timezone.now()
    due = list(
        Transaction.objects.filter(
            kind=kind, status=Transaction.Status.PROCESSING, next_check_at__lte=now_
        )
        .order_by("next_check_at")
        .values_list("pk", "check_attempts")[:limit]
    )
    counts = {"settled": 0, "failed": 0, "processing": 0}
    for pk, attempts in due:
        claimed = Transaction.objects.filter(
            pk=pk, status=Transaction.Status.PROCESSING, check_attempts=attempts
        ).update(check_attempts=attempts + 1, next_check_at=now_ + _check_backoff(attempts))
        if not claimed:
            continue  # another worker took it, or it was settled meanwhile
        tx = Transaction.objects.select_related("invoice", "refund_of").get(pk=pk)
        try:
            counts[settle(tx, now_)] += 1
        except Exception:  # one bad transaction must not stop the others: asked again later
            logger.exception("Reconciling %s %s failed", noun, pk)
            counts["processing"] += 1
    if not any(counts.values()):
        return ""
    return (
        f"{noun}s: {counts['settled']} settled, {counts['failed']} failed, "
        f"{counts['processing']} still processing"
    )


def payments_reconcile_due(*, now: datetime.datetime | None = None, limit: int = 50) -> str:
    """The worker's job: settle card payments left processing past their grace period
    (PENDING_CHANGE_GRACE_SECONDS: the request that made them has finished or died);
    settling is exactly-once (see ``card_payment_record``). Refunds:
    ``refunds.refunds_reconcile_due``."""
    return processing_transactions_settle_due(
        kind=Transaction.Kind.PAYMENT,
        settle=lambda tx, at: payment_reconcile(tx, now=at),
        noun="card payment",
        now=now,
        limit=limit,
    )
