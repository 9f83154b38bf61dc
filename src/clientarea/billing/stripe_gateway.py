"""Stripe: the card processor, through the official ``stripe`` library.

One ``stripe.StripeClient`` per gateway (no global ``stripe.api_key``), talking to
``settings.STRIPE_API_BASE`` over httpx with a timeout of OUTSIDE_CALL_TIMEOUT_SECONDS per
request and no retries of its own (``max_network_retries=0``): every method here makes
exactly one request, and the caller retries it through ``core.outside.outside_call``,
which knows what is safe to retry. Every POST carries an idempotency key: ours (the
Transaction's, for a payment) when the caller gives one, so a retried payment charges
once (Stripe keeps a key's first answer for at least 24 hours).

Stripe's errors become the three outside errors (one place, ``_translate``):

======================================  ====================================================
Stripe                                  here
======================================  ====================================================
CardError (402)                         ``StripeCardError`` (an OutsideRefused): the
                                        decline message for the customer, ``code`` the
                                        decline code (insufficient_funds...) or error code
                                        (card_declined, processing_error,
                                        authentication_required...)
AuthenticationError (401),              OutsideUnavailable, and an error logged for staff
PermissionError (403)                   (without the key)
RateLimitError (429)                    OutsideUnavailable (Stripe did nothing)
APIConnectionError before the request   OutsideUnavailable (connection refused, connect
was sent                                timeout, TLS failure)
APIConnectionError after it was sent    OutsideUncertain (read timeout, dropped connection)
APIError (5xx), 409 (the same key       OutsideUncertain: Stripe says the result of a 500
still being processed)                  is unknown; ask again with the same key
IdempotencyError, InvalidRequestError   ``StripeRequestRefused`` (an OutsideRefused: our
                                        request was wrong, logged for staff), ``code``
                                        Stripe's (resource_missing...), ``detail`` its text
======================================  ====================================================

Amounts go to Stripe in the currency's minor unit (``to_minor``): cents for most, whole
units for the zero-decimal currencies, thousandths (rounded to tens) for the
three-decimal ones.

``StripeGateway`` also answers the payment services' gateway interface
(``gateways.PaymentGateway``), Stripe's "finalize payments on the server" flow: card
numbers are typed into Stripe's Payment Element in the browser, never posted to us;
Stripe.js hands the page a PaymentMethod id (``card_from_token`` reads what may be
shown of it), and ``charge`` confirms a PaymentIntent with it at once, on session with a
return URL (3-D Secure by redirect to the bank's page and back) or off session for a
stored card. ``charge_status`` reads the intent (by its id, or by our key through
Stripe's search for reconciliation), ``charge_cancel`` gives up on one left waiting for
3-D Secure, ``card_save`` and ``card_save_status`` keep a card on the account's customer
with a SetupIntent confirmed the same way, ``card_forget`` detaches it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import stripe
from django.conf import settings

from clientarea.core.outside import OutsideRefused, OutsideUnavailable, OutsideUncertain

from .gateways import CardRejected, CardToken, ChargeResult, ChargeStatus, SaveResult
from .stripe_customers import stored_customer

if TYPE_CHECKING:
    from clientarea.accounts.models import Account

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Stripe's published currency rules (docs: Supported currencies, "Zero-decimal
# currencies", "Three-decimal currencies", "Special cases").
ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga"}
    | {"pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}
)
# Amounts in thousandths, whose last digit must be 0 (rounded to the nearest ten).
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
# Two-decimal in the API, but only whole units may be charged (amounts divisible by 100).
WHOLE_UNITS_ONLY = frozenset({"isk"})

UNAVAILABLE = "The card processor could not be reached; nothing was charged."
UNCERTAIN = "The card processor did not answer in time."
MISCONFIGURED = "Card payments are not available right now; nothing was charged."
REFUSED = "The card processor could not process this request; nothing was charged."
CARD_NOT_READ = "The card could not be read: enter it again."
CANCELLED = "The payment was cancelled."

# Stripe's card brand codes (PaymentMethod card.brand) as our pages show them.
CARD_BRANDS = {
    "amex": "Amex",
    "cartes_bancaires": "Cartes Bancaires",
    "diners": "Diners Club",
    "discover": "Discover",
    "eftpos_au": "eftpos",
    "interac": "Interac",
    "jcb": "JCB",
    "mastercard": "Mastercard",
    "unionpay": "UnionPay",
    "visa": "Visa",
}
# A PaymentMethod id as Stripe.js hands it to the page (and Stripe's test cards' names).
_PAYMENT_METHOD_ID = re.compile(r"pm_[A-Za-z0-9_]{1,250}")
# PaymentIntent statuses still waiting for the customer, which may be cancelled.
_CANCELLABLE = frozenset({"requires_action", "requires_payment_method", "requires_confirmation"})


def card_brand(code: str) -> str:
    """The brand we show for Stripe's brand `code` ("Card" for one Stripe does not know)."""
    return CARD_BRANDS.get(code, "Card")


class StripeAmountError(ValueError):
    """An amount Stripe cannot take in that currency (a fraction of a yen...)."""


class StripeRequestRefused(OutsideRefused):
    """Stripe refused our request as invalid (an unknown object, an amount above what is
    left to refund, a reused idempotency key...): ``str()`` is a sentence for the
    customer, ``detail`` Stripe's own message for staff, ``code`` Stripe's code."""

    def __init__(self, message: str, *, code: str = "", detail: str = "") -> None:
        super().__init__(message, code=code)
        self.detail = detail


class StripeCardError(OutsideRefused):
    """The card was declined or could not be charged: ``str()`` is Stripe's message for
    the customer, ``code`` the decline code (or the error code when there is none)."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        decline_code: str = "",
        intent: PaymentIntentResult | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.decline_code = decline_code
        self.intent = intent  # the PaymentIntent as Stripe left it, when it said


def to_minor(amount: Decimal, currency: str) -> int:
    """`amount` in `currency` as the integer Stripe expects."""
    cur = currency.lower()
    if cur in ZERO_DECIMAL:
        if amount != amount.to_integral_value():
            raise StripeAmountError(f"{amount} {cur.upper()}: this currency has no decimals.")
        return int(amount)
    if cur in THREE_DECIMAL:
        tens = (amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return int(tens) * 10
    minor = (amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    if minor != amount * 100:
        raise StripeAmountError(f"{amount} {cur.upper()}: more than two decimals.")
    if cur in WHOLE_UNITS_ONLY and minor % 100:
        raise StripeAmountError(f"{amount} {cur.upper()}: only whole units can be charged.")
    return int(minor)


def from_minor(minor: int, currency: str) -> Decimal:
    cur = currency.lower()
    if cur in ZERO_DECIMAL:
        return Decimal(minor)
    if cur in THREE_DECIMAL:
        return (Decimal(minor) / 1000).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return Decimal(minor) / 100


# --- what the gateway answers ------------------------------------------------------------


@dataclass(frozen=True)
class PaymentIntentResult:
    id: str
    status: str  # Stripe's: requires_payment_method, requires_action, processing, succeeded...
    amount: int  # minor units
    currency: str
    client_secret: str = ""
    payment_method: str = ""
    latest_charge: str = ""
    redirect_url: str = ""  # next_action redirect_to_url (3-D Secure page)
    error_code: str = ""  # of the last failed attempt
    error_message: str = ""
    metadata: Mapping[str, str] | None = None
    customer: str = ""  # the Customer the card is charged for (and kept on)
    setup_future_usage: str = ""  # set when the card is to be kept once paid

    def charge_result(self) -> ChargeResult | None:
        """The payment's final result, or None while it can still change (processing,
        waiting for the customer's 3-D Secure or a payment method, being confirmed)."""
        if self.status == "succeeded":
            return ChargeResult(ChargeStatus.SUCCEEDED, self.id)
        if self.status == "canceled":
            return ChargeResult(ChargeStatus.FAILED, self.id, "The payment was cancelled.")
        if self.status == "requires_payment_method" and self.error_code:
            # FAILED, not DECLINED, though the card was declined: the customer may still
            # complete the same intent with another card, and a success is recorded over
            # a failed payment, never over a declined one (services.card_payment_record).
            return ChargeResult(
                ChargeStatus.FAILED, self.id, self.error_message or "The card was declined."
            )
        return None


@dataclass(frozen=True)
class SetupIntentResult:
    id: str
    status: str
    customer: str
    client_secret: str = ""
    payment_method: str = ""
    redirect_url: str = ""  # next_action redirect_to_url (3-D Secure page)
    error_message: str = ""  # of the last failed attempt


@dataclass(frozen=True)
class CardSummary:
    """What may be stored and shown about a card: nothing more."""

    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    customer: str = ""


@dataclass(frozen=True)
class RefundResult:
    id: str
    status: str  # succeeded, pending, failed, requires_action, canceled
    amount: int
    currency: str
    payment_intent: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    failure_reason: str = ""


def _plain(obj: Any) -> Any:
    """A StripeObject as plain dicts and lists."""
    return obj.to_dict() if hasattr(obj, "to_dict") else obj


def _ref(value: Any) -> str:
    """An id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        return str(value.get("id", ""))
    return str(value or "")


def _get(obj: Any, key: str, default: Any = None) -> Any:
    try:
        value = obj[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def intent_from_stripe(obj: Any) -> PaymentIntentResult:
    """A PaymentIntent as Stripe sent it (StripeObject or the dict of a webhook event)."""
    obj = _plain(obj)
    error = _get(obj, "last_payment_error") or {}
    action = _get(obj, "next_action") or {}
    redirect = _get(action, "redirect_to_url") or {}
    return PaymentIntentResult(
        id=obj["id"],
        status=obj["status"],
        amount=int(obj["amount"]),
        currency=obj["currency"],
        client_secret=_get(obj, "client_secret", ""),
        payment_method=_ref(_get(obj, "payment_method")),
        latest_charge=_ref(_get(obj, "latest_charge")),
        redirect_url=_get(redirect, "url", ""),
        error_code=_get(error, "decline_code", "") or _get(error, "code", ""),
        error_message=_get(error, "message", ""),
        metadata=dict(_get(obj, "metadata", {})),
        customer=_ref(_get(obj, "customer")),
        setup_future_usage=str(_get(obj, "setup_future_usage", "")),
    )


def refund_from_stripe(obj: Any) -> RefundResult:
    """A Refund as Stripe sent it (StripeObject or the dict of a list or an event)."""
    obj = _plain(obj)
    return RefundResult(
        id=obj["id"],
        status=obj["status"],
        amount=int(obj["amount"]),
        currency=obj["currency"],
        payment_intent=_ref(_get(obj, "payment_intent")),
        metadata=dict(_get(obj, "metadata", {})),
        failure_reason=str(_get(obj, "failure_reason", "")),
    )


# --- errors -------------------------------------------------------------------------------

# httpx errors raised before the request went out: Stripe cannot have done anything.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def _translate(exc: stripe.StripeError, *, what: str) -> Exception:
    status = exc.http_status or 0
    if isinstance(exc, stripe.CardError):
        error = _plain(exc.error) if exc.error is not None else {}
        code = exc.code or ""
        decline_code = _get(error, "decline_code", "")
        intent_obj = _get(error, "payment_intent")
        return StripeCardError(
            exc.user_message or "The card was declined.",
            code=decline_code if decline_code not in ("", "generic_decline") else code,
            decline_code=decline_code,
            intent=intent_from_stripe(intent_obj) if intent_obj else None,
        )
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        # For staff: the key is wrong, revoked or lacks a permission. Never the key.
        logger.error(
            "Stripe refused our API key (%s, HTTP %s) during %s: check STRIPE_SECRET_KEY.",
            type(exc).__name__,
            status,
            what,
        )
        return OutsideUnavailable(MISCONFIGURED)
    if isinstance(exc, stripe.RateLimitError):
        return OutsideUnavailable(UNAVAILABLE)
    if isinstance(exc, stripe.APIConnectionError):
        if isinstance(exc.__cause__, _NOT_SENT):
            return OutsideUnavailable(UNAVAILABLE)
        return OutsideUncertain(UNCERTAIN)
    if status == 409 or status >= 500 or isinstance(exc, stripe.APIError):
        return OutsideUncertain(UNCERTAIN)
    if isinstance(exc, stripe.IdempotencyError | stripe.InvalidRequestError):
        code = exc.code or ("idempotency_error" if isinstance(exc, stripe.IdempotencyError) else "")
        if code != "resource_missing":
            logger.error(
                "Stripe refused our %s request (HTTP %s, %s): %s",
                what,
                status,
                code or type(exc).__name__,
                exc.user_message,
            )
        return StripeRequestRefused(REFUSED, code=code, detail=exc.user_message or "")
    return OutsideUncertain(UNCERTAIN)


# --- the gateway -------------------------------------------------------------------------


def _customer_key(account_id: int, email: str, name: str) -> str:
    """The idempotency key of creating an account's customer: a retry creates one
    customer, while another installation sharing the Stripe account (whose account ids
    repeat ours) is not refused for reusing a key with other parameters."""
    digest = hashlib.sha256(f"{account_id}\n{email}\n{name}".encode()).hexdigest()[:24]
    return f"customer-{account_id}-{digest}"


class _HTTPXClient(stripe.HTTPXClient):
    """The library's httpx client, handing the encoded form body to httpx as ``content``
    (httpx deprecates a str passed as ``data``, and warns on every request)."""

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), str | bytes):
            kwargs["content"] = kwargs.pop("data")
        elif not kwargs.get("data"):
            kwargs.pop("data", None)
        return args, kwargs


class StripeGateway:
    code = "stripe"
    label = "Card"

    def __init__(
        self,
        *,
        secret_key: str | None = None,
        api_base: str | None = None,
        timeout: float | None = None,
    ) -> None:
        key = settings.STRIPE_SECRET_KEY if secret_key is None else secret_key
        base = (settings.STRIPE_API_BASE if api_base is None else api_base).rstrip("/")
        seconds = settings.OUTSIDE_CALL_TIMEOUT_SECONDS if timeout is None else timeout
        # Test-mode objects (customers...) do not exist in live mode, and the other way.
        self.livemode = key.startswith(("sk_live_", "rk_live_"))
        self.client = stripe.StripeClient(
            key,
            base_addresses={"api": base},
            http_client=_HTTPXClient(timeout=seconds, allow_sync_methods=True),
            max_network_retries=0,
        )

    def __repr__(self) -> str:  # never the key
        return "StripeGateway()"

    def _call(self, what: str, request: Callable[[], T]) -> T:
        try:
            return request()
        except stripe.StripeError as exc:
            raise _translate(exc, what=what) from exc

    @staticmethod
    def _options(idempotency_key: str | None) -> stripe.RequestOptions:
        return {"idempotency_key": idempotency_key} if idempotency_key else {}

    # customers

    def customer_create(
        self, *, account_id: int, email: str, name: str, idempotency_key: str | None = None
    ) -> str:
        """A Stripe Customer for one of our accounts; returns its id (cus_...)."""
        customer = self._call(
            "customer create",
            lambda: self.client.v1.customers.create(
                params={
                    "email": email,
                    "name": name[:256],
                    "metadata": {"account_id": str(account_id)},
                },
                options=self._options(idempotency_key or _customer_key(account_id, email, name)),
            ),
        )
        return str(customer.id)

    def customer_for(self, account: Account) -> str:
        """The account's customer (cus_...): the recorded one, or one made now and
        recorded once (``stripe_customers.customer_for``). No transaction may be open."""
        from .stripe_customers import customer_for

        return customer_for(account, self)

    # payment intents

    def payment_intent_create(
        self,
        *,
        amount: Decimal,
        currency: str,
        idempotency_key: str,
        description: str,
        customer: str | None = None,
        payment_method: str | None = None,
        off_session: bool = False,
        return_url: str | None = None,
        save_card: bool = False,
        metadata: Mapping[str, str] | None = None,
    ) -> PaymentIntentResult:
        """A PaymentIntent for `amount` (converted to minor units), keyed by our
        Transaction's `idempotency_key` (also kept in its metadata as ``transaction``).

        With `payment_method` (a stored card), it is confirmed at once: off session (the
        customer is not there: a card that needs 3-D Secure is declined with
        authentication_required) or on session with `return_url` (the answer may be
        requires_action with ``redirect_url``). Without, it waits for the Payment Element:
        give the browser ``client_secret``. A decline raises ``StripeCardError``.
        `save_card` keeps the card on `customer` once the payment succeeds
        (``setup_future_usage``); a PaymentMethod already attached to a customer can
        only be used with that `customer`."""
        params: dict[str, Any] = {
            "amount": to_minor(amount, currency),
            "currency": currency.lower(),
            "description": description[:1000],
            "metadata": {"transaction": idempotency_key, **(metadata or {})},
            "payment_method_types": ["card"],
        }
        if customer:
            params["customer"] = customer
        if save_card:
            params["setup_future_usage"] = "off_session"
        if payment_method:
            params["payment_method"] = payment_method
            params["confirm"] = True
            if off_session:
                params["off_session"] = True
            elif return_url:
                params["return_url"] = return_url
        intent = self._call(
            "payment intent create",
            lambda: self.client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                # In a namespace of its own: a payment's key comes from the pay form, so
                # it must never be able to equal a key we derive for something else
                # (customer-..., save-..., detach-..., refund-...).
                options=self._options(f"pay-{idempotency_key}"),
            ),
        )
        return intent_from_stripe(intent)

    def payment_intent_confirm(
        self,
        intent_id: str,
        *,
        payment_method: str,
        idempotency_key: str,
        off_session: bool = False,
        return_url: str | None = None,
    ) -> PaymentIntentResult:
        params: dict[str, Any] = {"payment_method": payment_method}
        if off_session:
            params["off_session"] = True
        elif return_url:
            params["return_url"] = return_url
        intent = self._call(
            "payment intent confirm",
            lambda: self.client.v1.payment_intents.confirm(
                intent_id,
                params=params,  # type: ignore[arg-type]
                options=self._options(idempotency_key),
            ),
        )
        return intent_from_stripe(intent)

    def payment_intent_retrieve(self, intent_id: str) -> PaymentIntentResult:
        """What Stripe holds for an intent now (reconciliation, the browser's return)."""
        intent = self._call(
            "payment intent retrieve",
            lambda: self.client.v1.payment_intents.retrieve(intent_id),
        )
        return intent_from_stripe(intent)

    def payment_intent_find(self, transaction_key: str) -> PaymentIntentResult | None:
        """The intent made for our payment `transaction_key` (its metadata
        ``transaction``), or None if Stripe has none, for a payment whose intent id was
        never recorded (a crash right after creating it). Stripe's search is eventually
        consistent (an intent is usually found within a minute of its creation), so ask
        only after the grace period, and read None as "not yet known" near it."""
        quoted = transaction_key.replace("\\", "\\\\").replace("'", "\\'")
        found = self._call(
            "payment intent search",
            lambda: self.client.v1.payment_intents.search(
                params={"query": f"metadata['transaction']:'{quoted}'", "limit": 10}
            ),
        )
        intents = [intent_from_stripe(obj) for obj in _plain(found).get("data", [])]
        if not intents:
            return None
        # One intent per payment is the rule; if there are more, a success wins.
        return next((i for i in intents if i.status == "succeeded"), intents[0])

    # the PaymentGateway interface of the payment services (gateways.PaymentGateway)

    def card_from_token(self, token: str) -> CardToken:
        """The card the browser handed to Stripe (``stripe.createPaymentMethod`` gave the
        page `token`, a PaymentMethod id), as we show it. ``CardRejected`` when `token`
        is no PaymentMethod id, Stripe knows no such PaymentMethod, or it is no card."""
        if not _PAYMENT_METHOD_ID.fullmatch(token or ""):
            raise CardRejected(CARD_NOT_READ)
        try:
            card = self.payment_method_retrieve(token)
        except OutsideRefused as exc:
            if exc.code == "resource_missing":
                raise CardRejected(
                    "The card processor does not know that card: enter it again."
                ) from exc
            if exc.code == "not_a_card":
                raise CardRejected("Only a card can be used here.") from exc
            raise
        return self._card_token(card)

    @staticmethod
    def _card_token(card: CardSummary) -> CardToken:
        return CardToken(card.id, card_brand(card.brand), card.last4, card.exp_month, card.exp_year)

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
        """Charge the card `token` (a PaymentMethod id) once per `idempotency_key`: a
        PaymentIntent confirmed at once, on our server.

        With `return_url` the customer is on the page: a card whose bank wants 3-D Secure
        answers REQUIRES_ACTION with the bank's page (``redirect_url``), and Stripe sends
        the browser back to `return_url` (then ask ``charge_status`` with the intent id).
        Without, the payment is off session: such a card is DECLINED with Stripe's
        reason. A decline is DECLINED, a processing error FAILED (both with Stripe's
        message for the customer), an intent Stripe is still processing PENDING.
        `customer` is required for a stored card (Stripe refuses a PaymentMethod
        attached to a customer without it). `save_card` needs `customer` and
        `return_url` (Stripe keeps a card only on session): the card is attached to
        `customer` once paid."""
        if not token:
            raise StripeRequestRefused(REFUSED, code="no_payment_method")
        if save_card and not (customer and return_url):
            # Stripe keeps a card only on a customer, and only while its holder is
            # present (on session): refused here as Stripe would, nothing charged.
            logger.error("A card to keep was charged without a customer or a return URL.")
            raise StripeRequestRefused(REFUSED, code="save_needs_customer_on_session")
        try:
            to_minor(amount, currency)
        except StripeAmountError as exc:
            # Checked before anything is sent: Stripe could not take this amount at all.
            raise StripeRequestRefused(
                f"{exc} Cards cannot pay this amount, so nothing was charged: please pay "
                "by bank transfer or contact us.",
                code="amount_not_payable",
            ) from None
        try:
            intent = self.payment_intent_create(
                amount=amount,
                currency=currency,
                idempotency_key=idempotency_key,
                description=description,
                customer=customer or None,
                payment_method=token,
                off_session=not return_url,
                return_url=return_url or None,
                save_card=save_card,
            )
        except StripeCardError as exc:
            reference = exc.intent.id if exc.intent else ""
            if exc.code == "processing_error":
                return ChargeResult(ChargeStatus.FAILED, reference, str(exc))
            return ChargeResult(ChargeStatus.DECLINED, reference, str(exc))
        if intent.status == "requires_action" and intent.redirect_url:
            return ChargeResult(
                ChargeStatus.REQUIRES_ACTION, intent.id, redirect_url=intent.redirect_url
            )
        return intent.charge_result() or ChargeResult(ChargeStatus.PENDING, intent.id)

    @staticmethod
    def _check_ours(intent: PaymentIntentResult, idempotency_key: str) -> None:
        """Refuse an intent made for another of our payments (a reference taken from a
        return URL the browser could change)."""
        if (intent.metadata or {}).get("transaction") != idempotency_key:
            logger.error(
                "Stripe PaymentIntent %s was not made for payment %s: not used.",
                intent.id,
                idempotency_key,
            )
            raise StripeRequestRefused(REFUSED, code="intent_mismatch")

    def charge_status(self, idempotency_key: str, reference: str = "") -> ChargeResult | None:
        """What Stripe holds for our payment `idempotency_key`: its final result,
        REQUIRES_ACTION while the card holder's bank waits for them (3-D Secure), PENDING
        while it can otherwise still change, or None when Stripe has no intent for it.

        With `reference` (the intent id, pi_...) the intent is read directly, up to date
        at once, and must have been made for `idempotency_key`. Without, it is found by
        Stripe's search (see ``payment_intent_find``): an intent made in the last minute
        may not be found yet; a payment settled as failed for that reason is still
        recorded as paid by Stripe's payment_intent.succeeded event."""
        if reference:
            intent = self.payment_intent_retrieve(reference)
            self._check_ours(intent, idempotency_key)
        else:
            found = self.payment_intent_find(idempotency_key)
            if found is None:
                return None
            intent = found
        return self._result(intent)

    @staticmethod
    def _result(intent: PaymentIntentResult) -> ChargeResult:
        """The payment's result as the services read it: final, waiting for the card
        holder's bank (with the bank's page when Stripe gives it), or pending."""
        final = intent.charge_result()
        if final is not None:
            return final
        if intent.status == "requires_action":
            return ChargeResult(
                ChargeStatus.REQUIRES_ACTION, intent.id, redirect_url=intent.redirect_url
            )
        return ChargeResult(ChargeStatus.PENDING, intent.id)

    def charge_kept_card(
        self, *, account: Account, idempotency_key: str, reference: str
    ) -> CardToken | None:
        """The card our payment `idempotency_key` (intent `reference`) kept for later on
        `account`'s customer, as we show it; None unless the intent succeeded with
        ``setup_future_usage`` for the account's recorded customer and its PaymentMethod
        is attached to that customer now (one removed since is not kept again). Reads
        the intent and the PaymentMethod: no transaction may be open."""
        customer = stored_customer(account, livemode=self.livemode)
        if not customer or not reference:
            return None
        intent = self.payment_intent_retrieve(reference)
        self._check_ours(intent, idempotency_key)
        if (
            intent.status != "succeeded"
            or not intent.setup_future_usage
            or intent.customer != customer
            or not intent.payment_method
        ):
            return None
        card = self.payment_method_retrieve(intent.payment_method)
        if card.customer != customer:
            return None
        return self._card_token(card)

    def charge_cancel(self, idempotency_key: str, reference: str) -> ChargeResult | None:
        """Give up on a payment still waiting for the customer (3-D Secure never
        completed, a card to retry): its intent is cancelled at Stripe, and the answer
        is FAILED ("The payment was cancelled."). An intent that succeeded meanwhile, or
        that Stripe is processing, cannot be cancelled: the answer is then what Stripe
        holds (SUCCEEDED, PENDING...), so a success is never lost. None when Stripe has
        no intent for the payment (no `reference`, and its search finds none)."""
        if reference:
            intent = self.payment_intent_retrieve(reference)
            self._check_ours(intent, idempotency_key)
        else:
            found = self.payment_intent_find(idempotency_key)
            if found is None:
                return None
            intent = found
        if intent.status in _CANCELLABLE:
            try:
                cancelled = self._call(
                    "payment intent cancel",
                    lambda: self.client.v1.payment_intents.cancel(
                        intent.id,
                        params={"cancellation_reason": "abandoned"},
                        options=self._options(f"cancel-{intent.id}"),
                    ),
                )
                intent = intent_from_stripe(cancelled)
            except StripeRequestRefused as exc:
                if exc.code != "payment_intent_unexpected_state":
                    raise
                # It moved on meanwhile (the customer completed 3-D Secure): Stripe's
                # word now, whatever it is.
                intent = self.payment_intent_retrieve(intent.id)
        return intent.charge_result() or ChargeResult(ChargeStatus.PENDING, intent.id)

    def card_save(
        self, *, token: str, customer: str, idempotency_key: str, return_url: str
    ) -> SaveResult:
        """Keep the card `token` (a PaymentMethod id from the page) on `customer` for
        payments off session: a SetupIntent confirmed at once. SaveResult(card) when
        saved; SaveResult(None, reference, redirect_url) when the card holder's bank
        wants 3-D Secure first (Stripe then sends the browser to `return_url`: ask
        ``card_save_status``); ``CardRejected`` with the reason when the card is
        refused."""
        if not _PAYMENT_METHOD_ID.fullmatch(token or ""):
            raise CardRejected(CARD_NOT_READ)
        try:
            setup = self.setup_intent_create(
                customer=customer,
                idempotency_key=idempotency_key,
                payment_method=token,
                return_url=return_url or None,
            )
        except StripeCardError as exc:
            raise CardRejected(str(exc)) from exc
        except StripeRequestRefused as exc:
            if exc.code == "resource_missing":
                raise CardRejected(
                    "The card processor does not know that card: enter it again."
                ) from exc
            raise
        if setup.status == "succeeded":
            return SaveResult(self._card_token(self.payment_method_retrieve(setup.payment_method)))
        if setup.status in ("requires_action", "processing"):
            return SaveResult(None, reference=setup.id, redirect_url=setup.redirect_url)
        raise CardRejected(setup.error_message or "The card could not be saved.")

    def card_save_status(self, reference: str) -> SaveResult | None:
        """The card saved by the SetupIntent `reference` (seti_...): SaveResult(card)
        once saved, SaveResult(None, reference) while it still waits (3-D Secure not
        completed, processing), None when it was not saved (authentication failed, the
        card was refused, the intent was cancelled)."""
        setup = self.setup_intent_retrieve(reference)
        if setup.status == "succeeded":
            return SaveResult(self._card_token(self.payment_method_retrieve(setup.payment_method)))
        if setup.status in ("requires_action", "requires_confirmation", "processing"):
            return SaveResult(None, reference=setup.id, redirect_url=setup.redirect_url)
        return None

    # setup intents: saving a card

    def setup_intent_create(
        self,
        *,
        customer: str,
        idempotency_key: str | None = None,
        payment_method: str | None = None,
        return_url: str | None = None,
    ) -> SetupIntentResult:
        """A SetupIntent keeping a card on `customer` for payments off session. With
        `payment_method` (a card the browser handed to Stripe) it is confirmed at once,
        the card holder present: the answer may be requires_action with ``redirect_url``
        (3-D Secure), after which Stripe sends the browser to `return_url`. A refused card
        raises ``StripeCardError``."""
        params: dict[str, Any] = {
            "customer": customer,
            "usage": "off_session",
            "payment_method_types": ["card"],
        }
        if payment_method:
            params["payment_method"] = payment_method
            params["confirm"] = True
            if return_url:
                params["return_url"] = return_url
        intent = self._call(
            "setup intent create",
            lambda: self.client.v1.setup_intents.create(
                params=params,  # type: ignore[arg-type]
                options=self._options(idempotency_key),
            ),
        )
        return self._setup(intent)

    def setup_intent_retrieve(self, intent_id: str) -> SetupIntentResult:
        intent = self._call(
            "setup intent retrieve",
            lambda: self.client.v1.setup_intents.retrieve(intent_id),
        )
        return self._setup(intent)

    @staticmethod
    def _setup(obj: Any) -> SetupIntentResult:
        obj = _plain(obj)
        return SetupIntentResult(
            id=obj["id"],
            status=obj["status"],
            customer=_ref(_get(obj, "customer")),
            client_secret=_get(obj, "client_secret", ""),
            payment_method=_ref(_get(obj, "payment_method")),
            redirect_url=_get(_get(_get(obj, "next_action", {}), "redirect_to_url", {}), "url", ""),
            error_message=_get(_get(obj, "last_setup_error", {}), "message", ""),
        )

    # payment methods (stored cards)

    def payment_method_retrieve(self, payment_method_id: str) -> CardSummary:
        method = self._call(
            "payment method retrieve",
            lambda: self.client.v1.payment_methods.retrieve(payment_method_id),
        )
        method = _plain(method)
        card = _get(method, "card")
        if card is None:
            raise OutsideRefused("Only cards can be stored.", code="not_a_card")
        return CardSummary(
            id=method["id"],
            brand=str(card["brand"]),
            last4=str(card["last4"]),
            exp_month=int(card["exp_month"]),
            exp_year=int(card["exp_year"]),
            customer=_ref(_get(method, "customer")),
        )

    def payment_method_detach(self, payment_method_id: str) -> None:
        """Detach a stored card from its customer. Detaching one already detached (a
        retry after a lost answer) is not an error."""
        try:
            self._call(
                "payment method detach",
                lambda: self.client.v1.payment_methods.detach(
                    payment_method_id, options=self._options(f"detach-{payment_method_id}")
                ),
            )
        except OutsideRefused as exc:
            if exc.code == "resource_missing":
                return
            if not self.payment_method_retrieve(payment_method_id).customer:
                return
            raise

    def card_forget(self, token: str) -> None:
        """Remove a stored card at Stripe: detach its PaymentMethod from the customer
        (one already detached, or unknown to Stripe, is not an error)."""
        self.payment_method_detach(token)

    # refunds

    def refund_create(
        self,
        *,
        payment_intent: str,
        idempotency_key: str,
        amount: Decimal | None = None,
        currency: str = "",
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        """Refund a succeeded PaymentIntent: all that is left of it (`amount` None) or
        `amount` in `currency`. `reason`: duplicate, fraudulent or requested_by_customer.
        `metadata` is kept on the refund (``refund``: our refund's key, by which
        ``refund_find`` finds it when the answer was lost)."""
        params: dict[str, Any] = {"payment_intent": payment_intent}
        if amount is not None:
            params["amount"] = to_minor(amount, currency)
        if reason:
            params["reason"] = reason
        if metadata:
            params["metadata"] = dict(metadata)
        refund = self._call(
            "refund create",
            lambda: self.client.v1.refunds.create(
                params=params,  # type: ignore[arg-type]
                options=self._options(idempotency_key),
            ),
        )
        return refund_from_stripe(refund)

    def refund_retrieve(self, refund_id: str) -> RefundResult:
        """What Stripe holds for a refund now (a pending one settles later)."""
        refund = self._call("refund retrieve", lambda: self.client.v1.refunds.retrieve(refund_id))
        return refund_from_stripe(refund)

    def refunds_of(self, payment_intent: str) -> list[RefundResult]:
        """The refunds of a PaymentIntent, newest first (at most 100: far more than one
        payment is ever refunded in parts). Stripe's list is up to date at once, unlike
        its search."""
        found = self._call(
            "refund list",
            lambda: self.client.v1.refunds.list(
                params={"payment_intent": payment_intent, "limit": 100}
            ),
        )
        return [refund_from_stripe(obj) for obj in _plain(found).get("data", [])]

    def refund_find(self, payment_intent: str, refund_key: str) -> RefundResult | None:
        """The refund of `payment_intent` made for our refund `refund_key` (its metadata
        ``refund``), or None when Stripe made none (the request never reached it)."""
        return next(
            (r for r in self.refunds_of(payment_intent) if r.metadata.get("refund") == refund_key),
            None,
        )


_GATEWAYS: dict[tuple[str, str, float], StripeGateway] = {}


def stripe_gateway() -> StripeGateway:
    """The gateway for the current settings, made once and reused (it keeps its
    connections open between requests)."""
    config = (
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        float(settings.OUTSIDE_CALL_TIMEOUT_SECONDS),
    )
    if config not in _GATEWAYS:
        _GATEWAYS.clear()
        _GATEWAYS[config] = StripeGateway()
    return _GATEWAYS[config]
