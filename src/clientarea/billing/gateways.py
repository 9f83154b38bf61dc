"""Payment gateways: a small interface and the two gateways shipped with the client area.

A gateway takes a card once (``tokenize_card``) and gives back a token plus what may be
shown about the card (brand, last four, expiry); payments are then made against the token
(``charge``). The card number and CVC go to the gateway and nowhere else: ``CardDetails``
masks itself in ``repr`` so it cannot end up in a log or an error report by accident.

A gateway is an outside system (``clientarea.core.outside``): it is called with no
database transaction open, every charge carries the idempotency key of the payment it
belongs to (the processor charges a key at most once, so a retried charge is safe), and
``charge_status`` tells what the processor holds for a key, so a payment whose answer was
lost (a timeout, a crash) is settled later by asking. The errors say what happened:
``GatewayError`` (an ``OutsideRefused``: the processor answered with an error, nothing was
charged), ``OutsideUnavailable`` (it was not reached: nothing was charged) and
``OutsideUncertain`` (the charge may have been made: ask ``charge_status`` later).

``SandboxGateway`` behaves like a real card processor's test mode. Its test numbers:

    ==================  ==========  =====================================
    number              brand       result of a charge
    ==================  ==========  =====================================
    4242 4242 4242 4242 Visa        succeeds
    5555 5555 5555 4444 Mastercard  succeeds
    3782 822463 10005   Amex        succeeds (4-digit CVC)
    4000 0000 0000 0002 Visa        declined: card declined
    4000 0000 0000 9995 Visa        declined: insufficient funds
    4000 0000 0000 0119 Visa        processing error (the gateway fails)
    4000 0000 0000 3006 Visa        charged, but the answer never comes
                                    (a timeout: the payment stays
                                    "Processing" until reconciled)
    4000 0000 0000 4004 Visa        the processor cannot be reached
                                    (nothing is charged)
    ==================  ==========  =====================================

Any other number is refused, as a test mode refuses real cards. ``BankTransferGateway``
takes no cards: a "charge" announces a transfer, and the invoice waits for staff to
confirm the money arrived in the back office.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from clientarea.core.outside import OutsideRefused, OutsideUnavailable, OutsideUncertain


class GatewayError(OutsideRefused):
    """The gateway answered that it could not process the request (a processor error, an
    unknown token or gateway): nothing was charged."""


class CardRejected(Exception):
    """The card cannot be used (invalid, expired, not a test card...): tell the user why."""


@dataclass(frozen=True)
class CardDetails:
    number: str = field(repr=False)
    exp_month: int
    exp_year: int
    cvc: str = field(repr=False)

    def __repr__(self) -> str:
        return f"CardDetails(last4={self.number[-4:]!r}, exp={self.exp_month}/{self.exp_year})"

    __str__ = __repr__


@dataclass(frozen=True)
class CardToken:
    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class ChargeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    PENDING = "pending"  # bank transfer: the money is awaited, nothing moved yet
    DECLINED = "declined"
    FAILED = "failed"  # the processor gave up on it (an error): nothing was charged


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    reference: str
    message: str = ""


class PaymentGateway(Protocol):
    """What the payment services need from a card processor.

    Every method is an outside call: made with no database transaction open, bounded by
    OUTSIDE_CALL_TIMEOUT_SECONDS per request, and raising ``GatewayError`` (refused),
    ``OutsideUnavailable`` (not reached) or ``OutsideUncertain`` (no answer after
    sending) instead of anything else. The caller retries through ``outside_call``.
    """

    code: str
    label: str

    def tokenize_card(self, card: CardDetails) -> CardToken: ...

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str | None,
        idempotency_key: str,
        description: str,
    ) -> ChargeResult:
        """Charge `amount` once per `idempotency_key`: a repeated call with the same key
        returns the first result and charges nothing more."""
        ...

    def charge_status(self, idempotency_key: str) -> ChargeResult | None:
        """What the processor holds for the charge made with `idempotency_key`: its
        result, or None when the processor never received it (nothing was charged)."""
        ...


def digits_only(number: str) -> str:
    return "".join(ch for ch in number if not ch.isspace() and ch != "-")


def _ascii_digits(text: str) -> bool:
    # str.isdigit() is also true for "²" and other digits int() refuses.
    return text.isascii() and text.isdigit()


def luhn_valid(number: str) -> bool:
    if not _ascii_digits(number) or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(number: str) -> str:
    if not _ascii_digits(number):
        return "Card"
    if number.startswith("4"):
        return "Visa"
    if number[:2] in {"34", "37"}:
        return "Amex"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4] or 0) <= 2720:
        return "Mastercard"
    return "Card"


SANDBOX_CARDS: dict[str, str] = {
    "4242424242424242": "ok",
    "5555555555554444": "ok",
    "378282246310005": "ok",
    "4000000000000002": "declined",
    "4000000000009995": "insufficient",
    "4000000000000119": "error",
    "4000000000003006": "timeout",
    "4000000000004004": "unreachable",
}

# What the sandbox can be told to do to the next charges (SandboxGateway.fail_next).
SIMULATIONS = ("unavailable", "timeout")

_DECLINE_MESSAGES = {
    "declined": "Your card was declined by the bank.",
    "insufficient": "Your card was declined: insufficient funds.",
}


class SandboxGateway:
    """A card processor's test mode: documented numbers, tokens, idempotent charges, and
    the failures of a network between us and the processor (for tests and the demo)."""

    code = "sandbox"
    label = "Card (sandbox)"

    def __init__(self) -> None:
        # Like a real processor, a charge retried with the same idempotency key returns
        # the first result instead of charging again.
        # Bounded, as it lives in the process: the newest MAX_REMEMBERED keys.
        self._charges: OrderedDict[str, ChargeResult] = OrderedDict()
        self._lock = threading.Lock()
        self._failures: list[str] = []

    MAX_REMEMBERED = 10_000

    def reset(self) -> None:
        """Forget remembered charges and planned failures (tests start afresh)."""
        with self._lock:
            self._charges.clear()
            self._failures.clear()

    def fail_next(self, *failures: str) -> None:
        """Make the next charges fail in order, whatever the card: "unavailable" (the
        processor is not reached: nothing is charged) or "timeout" (the charge is made,
        but its answer is lost). Calls after them behave normally again."""
        unknown = set(failures) - set(SIMULATIONS)
        if unknown:
            raise ValueError(f"Unknown sandbox failure: {sorted(unknown)}")
        with self._lock:
            self._failures.extend(failures)

    def _next_failure(self) -> str:
        with self._lock:
            return self._failures.pop(0) if self._failures else ""

    def tokenize_card(self, card: CardDetails) -> CardToken:
        number = digits_only(card.number)
        if not luhn_valid(number):
            raise CardRejected("That card number is not valid.")
        outcome = SANDBOX_CARDS.get(number)
        if outcome is None:
            raise CardRejected(
                "This is a test (sandbox) gateway: use one of its test card numbers."
            )
        # The outcome is carried by the token (as a processor's test tokens do); the
        # number itself is forgotten here.
        return CardToken(
            token=f"tok_sandbox_{outcome}_{secrets.token_hex(12)}",
            brand=card_brand(number),
            last4=number[-4:],
            exp_month=card.exp_month,
            exp_year=card.exp_year,
        )

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str | None,
        idempotency_key: str,
        description: str,
    ) -> ChargeResult:
        failure = self._next_failure()
        if failure == "unavailable":
            raise OutsideUnavailable("The card processor could not be reached.")
        outcome = token.split("_")[2] if token and token.startswith("tok_sandbox_") else ""
        if outcome == "unreachable":
            raise OutsideUnavailable("The card processor could not be reached.")
        with self._lock:
            remembered = self._charges.get(idempotency_key)
        if remembered is not None:
            result = remembered
        else:
            if not outcome:
                raise GatewayError("Unknown card token.")
            if outcome == "error":
                raise GatewayError("The card processor reported a processing error.")
            result = self._remember(idempotency_key, self._result_for(outcome))
        if failure == "timeout" or outcome == "timeout":
            # Made (and remembered) at the processor; the answer is lost on the way back.
            raise OutsideUncertain("The card processor did not answer in time.")
        return result

    def charge_status(self, idempotency_key: str) -> ChargeResult | None:
        with self._lock:
            return self._charges.get(idempotency_key)

    @staticmethod
    def _result_for(outcome: str) -> ChargeResult:
        if outcome in _DECLINE_MESSAGES:
            return ChargeResult(ChargeStatus.DECLINED, "", _DECLINE_MESSAGES[outcome])
        return ChargeResult(ChargeStatus.SUCCEEDED, f"ch_sandbox_{secrets.token_hex(10)}")

    def _remember(self, idempotency_key: str, result: ChargeResult) -> ChargeResult:
        with self._lock:
            result = self._charges.setdefault(idempotency_key, result)
            while len(self._charges) > self.MAX_REMEMBERED:
                self._charges.popitem(last=False)
            return result


class BankTransferGateway:
    """No money moves here: the customer transfers it, staff confirm it arrived."""

    code = "bank_transfer"
    label = "Bank transfer"

    def tokenize_card(self, card: CardDetails) -> CardToken:
        raise CardRejected("Bank transfers do not take cards.")

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str | None,
        idempotency_key: str,
        description: str,
    ) -> ChargeResult:
        return ChargeResult(ChargeStatus.PENDING, description)

    def charge_status(self, idempotency_key: str) -> ChargeResult | None:
        return None  # nothing is ever charged here: staff confirm transfers


SANDBOX = SandboxGateway()
BANK_TRANSFER = BankTransferGateway()
# The pseudo-gateway name of payments made from the account's credit balance.
CREDIT = "credit"

GATEWAYS: dict[str, PaymentGateway] = {SANDBOX.code: SANDBOX, BANK_TRANSFER.code: BANK_TRANSFER}
# The card gateways BILLING_CARD_GATEWAY may name ("" takes no new cards).
CARD_GATEWAYS: dict[str, PaymentGateway] = {SANDBOX.code: SANDBOX}


def card_gateway() -> PaymentGateway | None:
    """The gateway that takes new cards (BILLING_CARD_GATEWAY), or None when this
    installation takes no card payments (credit and bank transfer only)."""
    code = settings.BILLING_CARD_GATEWAY
    if not code:
        return None
    try:
        return CARD_GATEWAYS[code]
    except KeyError:
        raise ImproperlyConfigured(
            f"BILLING_CARD_GATEWAY={code!r} is not a card gateway this installation can use "
            f"({', '.join(sorted(CARD_GATEWAYS))}, or empty for none)."
        ) from None


def is_sandbox() -> bool:
    """Whether new cards go to the sandbox (its test cards are then shown)."""
    return card_gateway() is SANDBOX


def get_gateway(code: str) -> PaymentGateway:
    try:
        return GATEWAYS[code]
    except KeyError:
        raise GatewayError(f"Unknown payment gateway {code!r}.") from None
