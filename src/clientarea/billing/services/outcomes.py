"""What a payment is paid with, what came of it, and the refusals the billing services
raise: the vocabulary the pages, the API and the worker share with the services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..models import Transaction


class BillingError(Exception):
    """An action refused for a reason the user should read; nothing was changed."""


class IdempotencyKeyReused(BillingError):
    """The caller's idempotency key was sent before with another request."""


@dataclass(frozen=True)
class PayWithCredit:
    pass


@dataclass(frozen=True)
class PayWithStoredMethod:
    payment_method_id: int


@dataclass(frozen=True)
class PayWithNewCard:
    """A card the browser handed to the card processor: its token, never its number."""

    token: str
    save: bool = False


@dataclass(frozen=True)
class PayByBankTransfer:
    pass


PaySource = PayWithCredit | PayWithStoredMethod | PayWithNewCard | PayByBankTransfer


@dataclass(frozen=True)
class PaymentOutcome:
    # processing: a card payment whose result the processor has not confirmed yet;
    # requires_action: the card holder's bank wants them to authenticate (3-D Secure):
    # send the browser to `redirect_url`, the processor sends it back to the return page.
    status: Literal[
        "paid", "partial", "pending", "processing", "requires_action", "declined", "failed"
    ]
    message: str
    transaction: Transaction | None = None
    redirect_url: str = ""


PROCESSING_MESSAGE = (
    "Your payment is being processed; the invoice will update when the card processor "
    "confirms it. You will not be charged twice."
)

ALREADY_PROCESSING = (
    "A payment for this invoice is already being processed: the invoice will update when "
    "the card processor confirms it."
)

NOT_CHARGED = "The payment could not be processed and you were not charged."

CARD_UNAVAILABLE = "Card payments are not available right now and nothing was charged; try again."

AWAITING_AUTHENTICATION = "Waiting for the card holder to authenticate with their bank."

GAVE_UP_MESSAGE = (
    "The card processor never confirmed this payment, so it is treated as not made. "
    "If your card was charged, contact us: the money will be credited or refunded."
)

NEVER_RECEIVED_MESSAGE = "The payment never reached the card processor: you were not charged."
