"""Payment gateways: a small interface and the gateways shipped with the client area.

No card number ever reaches the client area. The browser hands the card to the processor
(Stripe's Payment Element; the sandbox's own small script and tokenizer) and posts us
only the processor's token for it; ``card_from_token`` then asks the processor what may be
shown about that card (brand, last four, expiry), and payments are made against the token
(``charge``). The card inputs of our pages carry no ``name``, so no form post to the client
area can contain a card number or security code.

A gateway is an outside system (``clientarea.core.outside``): it is called with no
database transaction open, every charge carries the idempotency key of the payment it
belongs to (the processor charges a key at most once, so a retried charge is safe), and
``charge_status`` tells what the processor holds for a key, so a payment whose answer was
lost (a timeout, a crash) is settled later by asking. The errors say what happened:
``GatewayError`` (an ``OutsideRefused``: the processor answered with an error, nothing was
charged), ``OutsideUnavailable`` (it was not reached: nothing was charged) and
``OutsideUncertain`` (the charge may have been made: ask ``charge_status`` later). A charge
made while the customer is on the page (``return_url`` given) may need the card holder's
bank to authenticate them (3-D Secure): it answers ``REQUIRES_ACTION`` with the page to
send the browser to, and the processor sends the browser back to ``return_url``.

``SandboxGateway`` behaves like a real card processor's test mode, for tests and the demo.
Its test cards (the page's script turns the typed number into the test card's name, and
only that name and the expiry go to the sandbox's tokenizer, which exists only with
DEMO_MODE):

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
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from django.conf import settings
from django.core import signing
from django.core.exceptions import ImproperlyConfigured

from clientarea.core.outside import OutsideRefused, OutsideUnavailable, OutsideUncertain

if TYPE_CHECKING:
    from clientarea.accounts.models import Account


class GatewayError(OutsideRefused):
    """The gateway answered that it could not process the request (a processor error, an
    unknown token or gateway): nothing was charged."""


class CardRejected(Exception):
    """The card cannot be used (unknown token, not a card, not a test card...): tell the
    user why."""


@dataclass(frozen=True)
class CardToken:
    """A card as the processor holds it: its token, and what may be shown about it."""

    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int

    @property
    def label(self) -> str:
        return f"{self.brand} ending in {self.last4}"


class ChargeStatus(StrEnum):
    SUCCEEDED = "succeeded"
    # Bank transfer: the money is awaited; a card: the processor has not decided yet.
    PENDING = "pending"
    # The card holder's bank wants them to authenticate (3-D Secure): send the browser to
    # ``redirect_url``; the processor sends it back to the charge's ``return_url``.
    REQUIRES_ACTION = "requires_action"
    DECLINED = "declined"
    FAILED = "failed"  # the processor gave up on it (an error): nothing was charged


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    reference: str  # the processor's id of the payment (a Stripe PaymentIntent id...)
    message: str = ""
    redirect_url: str = ""


@dataclass(frozen=True)
class SaveResult:
    """The answer to saving a card: ``card`` once saved, or ``redirect_url`` when the
    card holder must authenticate first (``reference`` is then the processor's id)."""

    card: CardToken | None
    reference: str = ""
    redirect_url: str = ""


class PaymentGateway(Protocol):
    """What the payment services need from a card processor.

    Every method is an outside call: made with no database transaction open, bounded by
    OUTSIDE_CALL_TIMEOUT_SECONDS per request, and raising ``GatewayError`` (refused),
    ``OutsideUnavailable`` (not reached) or ``OutsideUncertain`` (no answer after
    sending) instead of anything else. The caller retries through ``outside_call``.
    """

    code: str
    label: str

    def card_from_token(self, token: str) -> CardToken:
        """What may be shown about the card the browser handed to the processor as
        `token`; ``CardRejected`` when it is no usable card."""
        ...

    def customer_for(self, account: Account) -> str:
        """The processor's customer for `account` (made at the first need), which stored
        cards belong to; "" for a processor without customers."""
        ...

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str | None,
        idempotency_key: str,
        description: str,
        return_url: str = "",
        customer: str = "",
        save_card: bool = False,
    ) -> ChargeResult:
        """Charge `amount` once per `idempotency_key`: a repeated call with the same key
        returns the first result and charges nothing more. With `return_url` the
        customer is present and may be asked to authenticate (REQUIRES_ACTION); without,
        a card that needs it is declined. `save_card` keeps the card on `customer` for
        later payments."""
        ...

    def charge_status(self, idempotency_key: str, reference: str = "") -> ChargeResult | None:
        """What the processor holds for the charge made with `idempotency_key` (whose
        own id is `reference` when known): its result, PENDING while it can still change,
        or None when the processor never received it (nothing was charged)."""
        ...

    def charge_cancel(self, idempotency_key: str, reference: str) -> ChargeResult | None:
        """Give up on a charge still awaiting the customer (3-D Secure never completed):
        the processor's final word on it, a success included if it went through meanwhile;
        None when the processor never received it."""
        ...

    def card_save(
        self, *, token: str, customer: str, idempotency_key: str, return_url: str
    ) -> SaveResult:
        """Keep the card `token` on `customer` for later payments (the card holder is
        present: their bank may ask them to authenticate)."""
        ...

    def card_save_status(self, reference: str) -> SaveResult | None:
        """The card saved by `reference` (a save that needed authentication), or None
        when it was not saved (authentication failed or abandoned)."""
        ...

    def card_forget(self, token: str) -> None:
        """Remove a stored card at the processor (nothing when it holds none)."""
        ...


# --- the sandbox ------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxCard:
    number: str  # a public test number: the page's script maps typed numbers to names
    brand: str
    outcome: str


# The sandbox's test cards, by the name the tokenizer takes.
SANDBOX_CARDS: dict[str, SandboxCard] = {
    "visa": SandboxCard("4242424242424242", "Visa", "ok"),
    "mastercard": SandboxCard("5555555555554444", "Mastercard", "ok"),
    "amex": SandboxCard("378282246310005", "Amex", "ok"),
    "declined": SandboxCard("4000000000000002", "Visa", "declined"),
    "insufficient_funds": SandboxCard("4000000000009995", "Visa", "insufficient"),
    "processing_error": SandboxCard("4000000000000119", "Visa", "error"),
    "answer_lost": SandboxCard("4000000000003006", "Visa", "timeout"),
    "unreachable": SandboxCard("4000000000004004", "Visa", "unreachable"),
}

# What the sandbox can be told to do to the next charges (SandboxGateway.fail_next).
SIMULATIONS = ("unavailable", "timeout")

_DECLINE_MESSAGES = {
    "declined": "Your card was declined by the bank.",
    "insufficient": "Your card was declined: insufficient funds.",
}

SANDBOX_TOKEN_PREFIX = "tok_sandbox_"
_SANDBOX_SIGNER_SALT = "clientarea.billing.sandbox-card-token"


class SandboxGateway:
    """A card processor's test mode: documented test cards, signed tokens, idempotent
    charges, and the failures of a network between us and the processor (for tests and
    the demo). Its tokens are signed with the site's secret key and name the test card
    and expiry only, so any process of the installation can read them and none can be
    forged from a form field."""

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

    # tokens: what the sandbox's tokenizer endpoint gives the browser

    def test_token(self, name: str, exp_month: int, exp_year: int) -> CardToken:
        """A token for the test card `name` (see SANDBOX_CARDS) expiring `exp_month`/
        `exp_year`: what the tokenizer answers the page's script."""
        card = SANDBOX_CARDS.get(name)
        if card is None:
            raise CardRejected(
                "This is a test (sandbox) gateway: use one of its test card numbers."
            )
        if not (1 <= exp_month <= 12 and 2000 <= exp_year <= 2099):
            raise CardRejected("Choose the card's expiry month and year.")
        nonce = secrets.token_hex(4)
        signed = signing.Signer(salt=_SANDBOX_SIGNER_SALT).sign(
            f"{name}.{exp_month}.{exp_year}.{nonce}"
        )
        return CardToken(
            token=SANDBOX_TOKEN_PREFIX + signed,
            brand=card.brand,
            last4=card.number[-4:],
            exp_month=exp_month,
            exp_year=exp_year,
        )

    def _read_token(self, token: str | None) -> tuple[SandboxCard, int, int] | None:
        if not token or not token.startswith(SANDBOX_TOKEN_PREFIX):
            return None
        try:
            value = signing.Signer(salt=_SANDBOX_SIGNER_SALT).unsign(
                token.removeprefix(SANDBOX_TOKEN_PREFIX)
            )
            name, month, year, _nonce = value.split(".")
            return SANDBOX_CARDS[name], int(month), int(year)
        except (signing.BadSignature, ValueError, KeyError):
            return None

    def card_from_token(self, token: str) -> CardToken:
        read = self._read_token(token)
        if read is None:
            raise CardRejected("The card could not be read: enter it again.")
        card, month, year = read
        return CardToken(token, card.brand, card.number[-4:], month, year)

    def customer_for(self, account: Account) -> str:
        return ""  # the sandbox keeps no customers: its tokens are reusable as they are

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str | None,
        idempotency_key: str,
        description: str,
        return_url: str = "",
        customer: str = "",
        save_card: bool = False,
    ) -> ChargeResult:
        failure = self._next_failure()
        if failure == "unavailable":
            raise OutsideUnavailable("The card processor could not be reached.")
        read = self._read_token(token)
        outcome = read[0].outcome if read else ""
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

    def charge_status(self, idempotency_key: str, reference: str = "") -> ChargeResult | None:
        with self._lock:
            return self._charges.get(idempotency_key)

    def charge_cancel(self, idempotency_key: str, reference: str) -> ChargeResult | None:
        # Nothing in the sandbox awaits a customer: its charges are final at once.
        return self.charge_status(idempotency_key, reference)

    def card_save(
        self, *, token: str, customer: str, idempotency_key: str, return_url: str
    ) -> SaveResult:
        return SaveResult(self.card_from_token(token))

    def card_save_status(self, reference: str) -> SaveResult | None:
        return None  # a sandbox save never waits for authentication

    def card_forget(self, token: str) -> None:
        return None  # the sandbox keeps nothing about a token

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

    def card_from_token(self, token: str) -> CardToken:
        raise CardRejected("Bank transfers do not take cards.")

    def customer_for(self, account: Account) -> str:
        return ""

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str | None,
        idempotency_key: str,
        description: str,
        return_url: str = "",
        customer: str = "",
        save_card: bool = False,
    ) -> ChargeResult:
        return ChargeResult(ChargeStatus.PENDING, description)

    def charge_status(self, idempotency_key: str, reference: str = "") -> ChargeResult | None:
        return None  # nothing is ever charged here: staff confirm transfers

    def charge_cancel(self, idempotency_key: str, reference: str) -> ChargeResult | None:
        return None

    def card_save(
        self, *, token: str, customer: str, idempotency_key: str, return_url: str
    ) -> SaveResult:
        raise CardRejected("Bank transfers do not take cards.")

    def card_save_status(self, reference: str) -> SaveResult | None:
        return None

    def card_forget(self, token: str) -> None:
        return None


SANDBOX = SandboxGateway()
BANK_TRANSFER = BankTransferGateway()
# The pseudo-gateway name of payments made from the account's credit balance.
CREDIT = "credit"

GATEWAYS: dict[str, PaymentGateway] = {SANDBOX.code: SANDBOX, BANK_TRANSFER.code: BANK_TRANSFER}
STRIPE = "stripe"
# The card gateways BILLING_CARD_GATEWAY may name ("" takes no new cards).
CARD_GATEWAY_CODES = (SANDBOX.code, STRIPE)


def _stripe() -> PaymentGateway:
    # Imported on first use: the Stripe driver builds on this module.
    from .stripe_gateway import stripe_gateway

    return stripe_gateway()


def card_gateway() -> PaymentGateway | None:
    """The gateway that takes new cards (BILLING_CARD_GATEWAY), or None when this
    installation takes no card payments (credit and bank transfer only)."""
    code = settings.BILLING_CARD_GATEWAY
    if not code:
        return None
    if code == STRIPE:
        return GATEWAYS.get(STRIPE) or _stripe()
    if code == SANDBOX.code:
        return SANDBOX
    raise ImproperlyConfigured(
        f"BILLING_CARD_GATEWAY={code!r} is not a card gateway this installation can use "
        f"({', '.join(CARD_GATEWAY_CODES)}, or empty for none)."
    )


def is_sandbox() -> bool:
    """Whether new cards go to the sandbox (its test cards are then shown)."""
    return SANDBOX.code == settings.BILLING_CARD_GATEWAY


def is_stripe() -> bool:
    """Whether new cards are typed into Stripe's Payment Element."""
    return STRIPE == settings.BILLING_CARD_GATEWAY


def get_gateway(code: str) -> PaymentGateway:
    """The gateway of a stored card or a payment, by its code."""
    if code in GATEWAYS:
        return GATEWAYS[code]
    if code == STRIPE:
        return _stripe()
    raise GatewayError(f"Unknown payment gateway {code!r}.")
