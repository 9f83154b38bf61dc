"""The Stripe gateway as the payment services' card gateway (``gateways.PaymentGateway``):
a card the browser handed to Stripe (a PaymentMethod id) is read, charged on session
(3-D Secure by redirect and back) or off session, saved with a SetupIntent, cancelled
when abandoned, forgotten; against the local Stripe-compatible server, every request
checked against Stripe's published API description."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from clientarea.billing.gateways import (
    CardRejected,
    CardToken,
    ChargeResult,
    ChargeStatus,
    PaymentGateway,
    SaveResult,
)
from clientarea.billing.stripe_gateway import StripeGateway, StripeRequestRefused, card_brand
from clientarea.core.outside import OutsideUnavailable, OutsideUncertain, outside_call

from .stripe_server import StripeServer, running_server

KEY = "tx-card-flow-0123456789"
RETURN = "https://clientarea.example/billing/invoices/7/pay/return/"


@pytest.fixture
def server() -> Iterator[StripeServer]:
    with running_server() as srv:
        yield srv
        # Every request the driver sent was one Stripe's API description allows.
        assert srv.invalid_requests == []


@pytest.fixture
def gateway(server: StripeServer, settings: Any) -> PaymentGateway:
    settings.STRIPE_SECRET_KEY = server.secret_key
    settings.STRIPE_API_BASE = server.base_url
    settings.OUTSIDE_CALL_TIMEOUT_SECONDS = 1.0
    as_gateway: PaymentGateway = StripeGateway()  # only the payment services' interface
    return as_gateway


@pytest.fixture
def customer(server: StripeServer) -> str:
    return StripeGateway(secret_key=server.secret_key, api_base=server.base_url).customer_create(
        account_id=7, email="owner@example.com", name="Acme"
    )


@pytest.fixture
def unreachable() -> PaymentGateway:
    """A gateway whose Stripe cannot be reached (nobody listens on its port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return StripeGateway(secret_key="sk_test_x", api_base=f"http://127.0.0.1:{port}")


def charge(gateway: PaymentGateway, token: str, **kwargs: Any) -> ChargeResult:
    options: dict[str, Any] = {
        "amount": Decimal("123.00"),
        "currency": "EUR",
        "token": token,
        "idempotency_key": KEY,
        "description": "INV-1007",
    }
    options.update(kwargs)
    return gateway.charge(**options)


def save(gateway: PaymentGateway, token: str, customer: str, key: str = "save-1") -> SaveResult:
    return gateway.card_save(token=token, customer=customer, idempotency_key=key, return_url=RETURN)


def sent(server: StripeServer, method: str, path: str) -> list[dict[str, Any]]:
    return [r.params for r in server.requests if r.method == method and r.path == path]


def paths(server: StripeServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.requests]


def authenticate(redirect_url: str, *, succeed: bool) -> dict[str, list[str]]:
    """The card holder at the bank's 3-D Secure page: the query Stripe sends them back
    to our return URL with."""
    assert httpx.get(redirect_url).status_code == 200
    answer = httpx.post(redirect_url, data={"result": "succeed" if succeed else "fail"})
    assert answer.status_code == 303
    location = answer.headers["Location"]
    assert location.startswith(f"{RETURN}?")
    return parse_qs(urlsplit(location).query)


def intent_of(server: StripeServer, reference: str) -> dict[str, Any]:
    return server.intent(reference)


# --- card_from_token ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("token", "brand", "last4"),
    [
        ("pm_card_visa", "Visa", "4242"),
        ("pm_card_mastercard", "Mastercard", "4444"),
        ("pm_card_amex", "Amex", "0005"),
        ("pm_card_discover", "Discover", "1117"),
        ("pm_card_diners", "Diners Club", "0004"),
        ("pm_card_jcb", "JCB", "0505"),
        ("pm_card_unionpay", "UnionPay", "0005"),
    ],
)
def test_a_token_is_read_at_stripe_and_shown_by_our_brand_names(
    gateway: PaymentGateway, server: StripeServer, token: str, brand: str, last4: str
) -> None:
    card = gateway.card_from_token(token)
    held = server.state.payment_methods[token]["card"]
    assert card == CardToken(token, brand, last4, held["exp_month"], held["exp_year"])
    assert card.label == f"{brand} ending in {last4}"
    assert paths(server) == [f"GET /v1/payment_methods/{token}"]


def test_a_brand_stripe_knows_but_we_do_not_name_is_a_card() -> None:
    assert card_brand("unknown") == "Card"
    assert card_brand("cartes_bancaires") == "Cartes Bancaires"


@pytest.mark.parametrize("token", ["", "tok_visa", "4242424242424242", "pm_../v1/customers"])
def test_what_is_no_payment_method_id_is_rejected_without_asking_stripe(
    gateway: PaymentGateway, server: StripeServer, token: str
) -> None:
    with pytest.raises(CardRejected, match="could not be read"):
        gateway.card_from_token(token)
    assert server.requests == []


def test_a_payment_method_stripe_does_not_know_is_rejected(gateway: PaymentGateway) -> None:
    with pytest.raises(CardRejected, match="does not know that card"):
        gateway.card_from_token("pm_1NoSuchMethod0123")


def test_a_payment_method_that_is_no_card_is_rejected(
    gateway: PaymentGateway, server: StripeServer
) -> None:
    server.state.payment_methods["pm_sepa0123"] = {
        "id": "pm_sepa0123",
        "object": "payment_method",
        "type": "sepa_debit",
        "customer": None,
        "card": None,
        "sepa_debit": {"last4": "3000", "country": "DE"},
    }
    with pytest.raises(CardRejected, match="Only a card"):
        gateway.card_from_token("pm_sepa0123")


def test_reading_a_token_when_stripe_is_down_or_silent(
    gateway: PaymentGateway, server: StripeServer, unreachable: PaymentGateway
) -> None:
    with pytest.raises(OutsideUnavailable):
        unreachable.card_from_token("pm_card_visa")
    server.fail_next("429")
    with pytest.raises(OutsideUnavailable):
        gateway.card_from_token("pm_card_visa")
    server.fail_next("drop")
    with pytest.raises(OutsideUncertain):
        gateway.card_from_token("pm_card_visa")
    # Reading is safe to repeat: the caller retries it.
    server.fail_next("drop")
    card = outside_call(lambda: gateway.card_from_token("pm_card_visa"), retry_uncertain=True)
    assert card.last4 == "4242"


# --- charge on session (the customer on the pay page) -------------------------------------


def test_a_new_card_pays_on_session(gateway: PaymentGateway, server: StripeServer) -> None:
    paid = charge(gateway, "pm_card_visa", return_url=RETURN)
    assert paid.status == ChargeStatus.SUCCEEDED and paid.reference.startswith("pi_")
    request = sent(server, "POST", "/v1/payment_intents")[0]
    assert (request["payment_method"], request["confirm"], request["return_url"]) == (
        "pm_card_visa",
        "true",
        RETURN,
    )
    assert "off_session" not in request and "customer" not in request
    assert "setup_future_usage" not in request
    assert request["metadata"] == {"transaction": KEY}
    # Our key in a namespace of its own ("pay-"): a key from the pay form can never equal
    # one we derive for a customer, a save, a detach or a refund.
    assert server.requests[-1].headers["idempotency-key"] == f"pay-{KEY}"
    # The card Stripe charged is its own copy of the test card, as at Stripe.
    assert intent_of(server, paid.reference)["payment_method"] != "pm_card_visa"


def test_3d_secure_required_then_succeeded(gateway: PaymentGateway, server: StripeServer) -> None:
    asked = charge(gateway, "pm_card_authenticationRequired", return_url=RETURN)
    assert asked.status == ChargeStatus.REQUIRES_ACTION
    assert asked.reference.startswith("pi_")
    assert asked.redirect_url == f"{server.base_url}/3ds/{asked.reference}"
    # While the card holder is at their bank: not final.
    waiting = gateway.charge_status(KEY, asked.reference)
    assert waiting == ChargeResult(
        ChargeStatus.REQUIRES_ACTION, asked.reference, redirect_url=asked.redirect_url
    )
    back = authenticate(asked.redirect_url, succeed=True)
    assert back["payment_intent"] == [asked.reference]
    assert back["redirect_status"] == ["succeeded"]
    assert gateway.charge_status(KEY, asked.reference) == ChargeResult(
        ChargeStatus.SUCCEEDED, asked.reference
    )
    # Read directly by its id: up to date at once, never Stripe's (lagging) search.
    assert "GET /v1/payment_intents/search" not in paths(server)
    assert len(server.state.charges) == 1


def test_3d_secure_required_then_failed(gateway: PaymentGateway, server: StripeServer) -> None:
    asked = charge(gateway, "pm_card_authenticationRequired", return_url=RETURN)
    assert asked.status == ChargeStatus.REQUIRES_ACTION
    back = authenticate(asked.redirect_url, succeed=False)
    assert back["redirect_status"] == ["failed"]
    failed = gateway.charge_status(KEY, asked.reference)
    assert failed is not None
    assert (failed.status, failed.reference) == (ChargeStatus.FAILED, asked.reference)
    assert "failed authentication" in failed.message
    assert server.state.charges == {}


def test_a_charge_waiting_for_3d_secure_is_not_made_twice(
    gateway: PaymentGateway, server: StripeServer
) -> None:
    first = charge(gateway, "pm_card_authenticationRequired", return_url=RETURN)
    again = charge(gateway, "pm_card_authenticationRequired", return_url=RETURN)
    assert again == first
    assert len(server.state.payment_intents) == 1


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [
        ("pm_card_chargeDeclined", ChargeStatus.DECLINED, "Your card was declined."),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            ChargeStatus.DECLINED,
            "Your card has insufficient funds.",
        ),
        (
            "pm_card_chargeDeclinedProcessingError",
            ChargeStatus.FAILED,
            "An error occurred while processing your card. Try again in a little bit.",
        ),
    ],
)
@pytest.mark.parametrize("on_session", [True, False])
def test_a_refused_card_is_declined_or_failed_with_stripes_reason(
    gateway: PaymentGateway,
    server: StripeServer,
    token: str,
    status: ChargeStatus,
    message: str,
    on_session: bool,
) -> None:
    result = charge(gateway, token, return_url=RETURN if on_session else "")
    assert (result.status, result.message) == (status, message)
    assert result.reference.startswith("pi_")  # the intent, for the payment list
    failed_charge = intent_of(server, result.reference)["latest_charge"]
    assert server.state.charges[failed_charge]["status"] == "failed"
    # Repeated (a retry): Stripe's first answer again, nothing more charged.
    assert charge(gateway, token, return_url=RETURN if on_session else "") == result
    assert len(server.state.payment_intents) == 1


def test_3d_secure_off_session_is_declined(gateway: PaymentGateway, server: StripeServer) -> None:
    declined = charge(gateway, "pm_card_authenticationRequired")
    assert declined.status == ChargeStatus.DECLINED
    assert declined.message == "Your card was declined. This transaction requires authentication."
    request = sent(server, "POST", "/v1/payment_intents")[0]
    assert request["off_session"] == "true" and "return_url" not in request


def test_a_payment_stripe_is_still_processing_is_pending(
    gateway: PaymentGateway, server: StripeServer
) -> None:
    server.hold_next_in_processing()
    pending = charge(gateway, "pm_card_visa", return_url=RETURN)
    assert pending.status == ChargeStatus.PENDING and pending.reference.startswith("pi_")
    assert gateway.charge_status(KEY, pending.reference) == pending
    server.settle_processing(pending.reference, succeed=True)
    assert gateway.charge_status(KEY, pending.reference) == ChargeResult(
        ChargeStatus.SUCCEEDED, pending.reference
    )


def test_no_card_is_no_charge(gateway: PaymentGateway, server: StripeServer) -> None:
    with pytest.raises(StripeRequestRefused):
        gateway.charge(
            amount=Decimal("1.00"), currency="EUR", token=None, idempotency_key=KEY, description=""
        )
    assert server.requests == []


# --- the network ------------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["timeout", "drop"])
def test_an_answer_lost_after_sending_is_uncertain_and_settled_by_asking(
    gateway: PaymentGateway, server: StripeServer, failure: str
) -> None:
    server.fail_next(failure)
    with pytest.raises(OutsideUncertain):
        charge(gateway, "pm_card_visa", return_url=RETURN)
    assert len(server.state.charges) == 1  # charged: only the answer was lost
    # Reconciliation, with no intent id recorded: found by our key.
    found = gateway.charge_status(KEY)
    assert found is not None and found.status == ChargeStatus.SUCCEEDED
    # Or the same charge retried with the same key: Stripe's first answer, one charge.
    again = outside_call(
        lambda: charge(gateway, "pm_card_visa", return_url=RETURN), retry_uncertain=True
    )
    assert again == found
    assert len(server.state.charges) == 1


def test_a_connection_dropped_before_sending_charges_nothing(
    gateway: PaymentGateway, server: StripeServer
) -> None:
    server.fail_next("drop_before")
    with pytest.raises(OutsideUncertain):  # the driver cannot tell: asked again later
        charge(gateway, "pm_card_visa", return_url=RETURN)
    assert server.state.payment_intents == {}
    assert gateway.charge_status(KEY) is None  # Stripe never received it


def test_stripes_own_error_is_uncertain(gateway: PaymentGateway, server: StripeServer) -> None:
    server.fail_next("500")
    with pytest.raises(OutsideUncertain):
        charge(gateway, "pm_card_visa", return_url=RETURN)
    assert server.state.charges == {}


def test_stripe_down_is_unavailable(unreachable: PaymentGateway) -> None:
    with pytest.raises(OutsideUnavailable):
        charge(unreachable, "pm_card_visa", return_url=RETURN)
    with pytest.raises(OutsideUnavailable):
        unreachable.charge_status(KEY, "pi_x")
    with pytest.raises(OutsideUnavailable):
        unreachable.charge_cancel(KEY, "pi_x")
    with pytest.raises(OutsideUnavailable):
        save(unreachable, "pm_card_visa", "cus_x")
    with pytest.raises(OutsideUnavailable):
        unreachable.card_save_status("seti_x")
    with pytest.raises(OutsideUnavailable):
        unreachable.card_forget("pm_x")


def test_rate_limited_is_unavailable(gateway: PaymentGateway, server: StripeServer) -> None:
    server.fail_next("429")
    with pytest.raises(OutsideUnavailable):
        charge(gateway, "pm_card_visa", return_url=RETURN)
    assert server.state.payment_intents == {}


# --- customers: stored cards --------------------------------------------------------------


def test_a_stored_card_pays_only_with_its_customer(
    gateway: PaymentGateway, server: StripeServer, customer: str
) -> None:
    card = save(gateway, "pm_card_visa", customer).card
    assert card is not None
    with pytest.raises(StripeRequestRefused) as refused:
        charge(gateway, card.token, idempotency_key="tx-no-customer-0123")
    assert "belongs to a Customer" in refused.value.detail
    other = StripeGateway(secret_key=server.secret_key, api_base=server.base_url)
    stranger = other.customer_create(account_id=8, email="other@example.com", name="Other")
    with pytest.raises(StripeRequestRefused) as refused:
        charge(gateway, card.token, customer=stranger, idempotency_key="tx-stranger-0123")
    assert "does not have a payment method" in refused.value.detail
    assert server.state.charges == {}
    paid = charge(gateway, card.token, customer=customer)  # off session: no return_url
    assert paid.status == ChargeStatus.SUCCEEDED
    request = sent(server, "POST", "/v1/payment_intents")[-1]
    assert (request["customer"], request["payment_method"], request["off_session"]) == (
        customer,
        card.token,
        "true",
    )
    assert server.invalid_requests == []  # refused by Stripe's rules, not as malformed


def test_a_card_kept_while_paying_is_attached_to_the_customer(
    gateway: PaymentGateway, server: StripeServer, customer: str
) -> None:
    paid = charge(gateway, "pm_card_visa", return_url=RETURN, customer=customer, save_card=True)
    assert paid.status == ChargeStatus.SUCCEEDED
    request = sent(server, "POST", "/v1/payment_intents")[0]
    assert (request["setup_future_usage"], request["customer"]) == ("off_session", customer)
    kept = intent_of(server, paid.reference)["payment_method"]
    assert server.state.payment_methods[kept]["customer"] == customer
    # It pays later off session, with the customer.
    later = charge(gateway, kept, customer=customer, idempotency_key="tx-later-0123456")
    assert later.status == ChargeStatus.SUCCEEDED


def test_the_card_typed_in_the_page_is_kept_under_its_own_id(
    gateway: PaymentGateway, server: StripeServer, customer: str
) -> None:
    """As with Stripe.js: the page posts the PaymentMethod id createPaymentMethod gave
    it; the payment keeps that very PaymentMethod on the customer, and from then on it
    is charged only with its customer."""
    token = server.create_payment_method("pm_card_mastercard")
    card = gateway.card_from_token(token)
    assert (card.token, card.brand, card.last4) == (token, "Mastercard", "4444")
    paid = charge(gateway, token, return_url=RETURN, customer=customer, save_card=True)
    assert paid.status == ChargeStatus.SUCCEEDED
    assert intent_of(server, paid.reference)["payment_method"] == token
    assert server.state.payment_methods[token]["customer"] == customer
    with pytest.raises(StripeRequestRefused):
        charge(gateway, token, idempotency_key="tx-no-customer-0123")
    later = charge(gateway, token, customer=customer, idempotency_key="tx-later-0123456")
    assert later.status == ChargeStatus.SUCCEEDED
    # Paid without keeping it: it stays attached to no one.
    once = server.create_payment_method()
    assert charge(gateway, once, return_url=RETURN, idempotency_key="tx-once-01234").status == (
        ChargeStatus.SUCCEEDED
    )
    assert server.state.payment_methods[once]["customer"] is None


def test_a_card_kept_after_3d_secure_pays_later_without_it(
    gateway: PaymentGateway, server: StripeServer, customer: str
) -> None:
    token = "pm_card_authenticationRequiredOnSetup"
    # Not set up: off session it needs authentication, so it is declined.
    declined = charge(gateway, token, customer=customer, idempotency_key="tx-before-0123")
    assert declined.status == ChargeStatus.DECLINED
    asked = charge(gateway, token, return_url=RETURN, customer=customer, save_card=True)
    assert asked.status == ChargeStatus.REQUIRES_ACTION
    kept = intent_of(server, asked.reference)["payment_method"]
    assert server.state.payment_methods[kept]["customer"] is None  # not yet paid
    authenticate(asked.redirect_url, succeed=True)
    paid = gateway.charge_status(KEY, asked.reference)
    assert paid is not None and paid.status == ChargeStatus.SUCCEEDED
    assert server.state.payment_methods[kept]["customer"] == customer
    later = charge(gateway, kept, customer=customer, idempotency_key="tx-later-0123456")
    assert later.status == ChargeStatus.SUCCEEDED


def test_keeping_a_card_needs_a_customer_and_its_holder_present(
    gateway: PaymentGateway, server: StripeServer, customer: str
) -> None:
    for wrong in ({"return_url": RETURN}, {"customer": customer}):
        with pytest.raises(StripeRequestRefused) as refused:
            charge(gateway, "pm_card_visa", save_card=True, **wrong)
        assert refused.value.code == "save_needs_customer_on_session"
        assert "nothing was charged" in str(refused.value)
    assert [r.path for r in server.requests] == ["/v1/customers"]  # Stripe not asked
    # As Stripe refuses it: no card is set up off session.
    assert isinstance(gateway, StripeGateway)
    with pytest.raises(StripeRequestRefused) as refused:
        gateway.payment_intent_create(
            amount=Decimal("1.00"),
            currency="EUR",
            idempotency_key=KEY,
            description="INV-1007",
            customer=customer,
            payment_method="pm_card_visa",
            off_session=True,
            save_card=True,
        )
    assert "cannot set up future usages" in refused.value.detail
    assert server.state.charges == {}


# --- charge_status ----------------------------------------------------------------------------


def test_charge_status_by_reference_reads_the_intent_directly(
    gateway: PaymentGateway, server: StripeServer
) -> None:
    paid = charge(gateway, "pm_card_visa", return_url=RETURN)
    server.requests.clear()
    assert gateway.charge_status(KEY, paid.reference) == paid
    assert paths(server) == [f"GET /v1/payment_intents/{paid.reference}"]
    # Without it: Stripe's search by our key, as reconciliation does.
    server.requests.clear()
    assert gateway.charge_status(KEY) == paid
    assert paths(server) == ["GET /v1/payment_intents/search"]
    assert gateway.charge_status("tx-never-sent-0123") is None


def test_a_reference_made_for_another_payment_is_refused(
    gateway: PaymentGateway, server: StripeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A return URL's payment_intent can be changed by the browser: an intent of another
    payment never settles this one."""
    other = charge(gateway, "pm_card_visa", return_url=RETURN, idempotency_key="tx-other-0123")
    with pytest.raises(StripeRequestRefused) as refused:
        gateway.charge_status(KEY, other.reference)
    assert refused.value.code == "intent_mismatch"
    with pytest.raises(StripeRequestRefused):
        gateway.charge_cancel(KEY, other.reference)
    assert intent_of(server, other.reference)["status"] == "succeeded"
    assert "was not made for payment" in caplog.text


# --- charge_cancel ----------------------------------------------------------------------------


def test_an_abandoned_3d_secure_payment_is_cancelled(
    gateway: PaymentGateway, server: StripeServer
) -> None:
    asked = charge(gateway, "pm_card_authenticationRequired", return_url=RETURN)
    cancelled = gateway.charge_cancel(KEY, asked.reference)
    assert cancelled == ChargeResult(
        ChargeStatus.FAILED, asked.reference, "The payment was cancelled."
    )
    intent = intent_of(server, asked.reference)
    assert (intent["status"], intent["cancellation_reason"]) == ("canceled", "abandoned")
    request = sent(server, "POST", f"/v1/payment_intents/{asked.reference}/cancel")
    assert request == [{"cancellation_reason": "abandoned"}]
    # The bank's page is gone: the card holder can no longer complete it.
    assert httpx.get(asked.redirect_url).status_code == 404
    # Asked again (a retry, the reconciliation job): the same final word, no new request.
    assert gateway.charge_cancel(KEY, asked.reference) == cancelled
    assert len(sent(server, "POST", f"/v1/payment_intents/{asked.reference}/cancel")) == 1
    assert gateway.charge_status(KEY, asked.reference) == cancelled
    assert server.state.charges == {}


def test_cancelling_a_payment_that_succeeded_meanwhile_keeps_the_success(
    gateway: PaymentGateway, server: StripeServer
) -> None:
    asked = charge(gateway, "pm_card_authenticationRequired", return_url=RETURN)
    server.complete_authentication(asked.reference, succeed=True)
    kept = gateway.charge_cancel(KEY, asked.reference)
    assert kept == ChargeResult(ChargeStatus.SUCCEEDED, asked.reference)
    assert intent_of(server, asked.reference)["status"] == "succeeded"


def test_a_payment_completed_between_reading_and_cancelling_keeps_the_success(
    gateway: PaymentGateway, server: StripeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card holder completes 3-D Secure just after we read the intent: Stripe refuses
    the cancel, and its success is what we are told."""
    asked = charge(gateway, "pm_card_authenticationRequired", return_url=RETURN)
    assert isinstance(gateway, StripeGateway)
    read = gateway.payment_intent_retrieve
    calls: list[str] = []

    def read_then_complete(intent_id: str) -> Any:
        found = read(intent_id)
        if not calls:
            server.complete_authentication(intent_id, succeed=True)
        calls.append(intent_id)
        return found

    monkeypatch.setattr(gateway, "payment_intent_retrieve", read_then_complete)
    kept = gateway.charge_cancel(KEY, asked.reference)
    assert kept == ChargeResult(ChargeStatus.SUCCEEDED, asked.reference)
    assert len(calls) == 2  # read, cancel refused, read again
    answer = server.requests[-2]
    assert answer.path == f"/v1/payment_intents/{asked.reference}/cancel"
    assert intent_of(server, asked.reference)["status"] == "succeeded"


def test_a_payment_stripe_is_processing_is_not_cancelled(
    gateway: PaymentGateway, server: StripeServer
) -> None:
    server.hold_next_in_processing()
    pending = charge(gateway, "pm_card_visa", return_url=RETURN)
    assert gateway.charge_cancel(KEY, pending.reference) == ChargeResult(
        ChargeStatus.PENDING, pending.reference
    )
    assert intent_of(server, pending.reference)["status"] == "processing"


def test_a_payment_whose_3d_secure_failed_is_cancelled(
    gateway: PaymentGateway, server: StripeServer
) -> None:
    asked = charge(gateway, "pm_card_authenticationRequired", return_url=RETURN)
    server.complete_authentication(asked.reference, succeed=False)
    cancelled = gateway.charge_cancel(KEY, asked.reference)
    assert cancelled is not None and cancelled.status == ChargeStatus.FAILED
    assert intent_of(server, asked.reference)["status"] == "canceled"


def test_cancelling_without_a_reference_finds_the_intent_by_our_key(
    gateway: PaymentGateway, server: StripeServer
) -> None:
    assert gateway.charge_cancel(KEY, "") is None  # Stripe never received it
    asked = charge(gateway, "pm_card_authenticationRequired", return_url=RETURN)
    cancelled = gateway.charge_cancel(KEY, "")
    assert cancelled is not None
    assert (cancelled.status, cancelled.reference) == (ChargeStatus.FAILED, asked.reference)


def test_a_lost_cancel_answer_is_uncertain_and_safe_to_repeat(
    gateway: PaymentGateway, server: StripeServer
) -> None:
    asked = charge(gateway, "pm_card_authenticationRequired", return_url=RETURN)
    server.fail_next("500")  # the read
    with pytest.raises(OutsideUncertain):
        gateway.charge_cancel(KEY, asked.reference)
    assert intent_of(server, asked.reference)["status"] == "requires_action"
    result = outside_call(lambda: gateway.charge_cancel(KEY, asked.reference))
    assert result is not None and result.status == ChargeStatus.FAILED


# --- card_save and card_save_status -----------------------------------------------------------


def test_a_card_is_saved_on_the_customer(
    gateway: PaymentGateway, server: StripeServer, customer: str
) -> None:
    saved = save(gateway, "pm_card_mastercard", customer)
    assert saved.card is not None and saved.redirect_url == ""
    assert (saved.card.brand, saved.card.last4) == ("Mastercard", "4444")
    assert saved.card.token.startswith("pm_") and saved.card.token != "pm_card_mastercard"
    assert server.state.payment_methods[saved.card.token]["customer"] == customer
    request = sent(server, "POST", "/v1/setup_intents")[0]
    assert request == {
        "customer": customer,
        "usage": "off_session",
        "payment_method_types": {"0": "card"},
        "payment_method": "pm_card_mastercard",
        "confirm": "true",
        "return_url": RETURN,
    }
    # Saved twice (a retry with the same key): one SetupIntent, the same card.
    assert save(gateway, "pm_card_mastercard", customer) == saved
    assert len(server.state.setup_intents) == 1
    # The saved card pays off session.
    paid = charge(gateway, saved.card.token, customer=customer)
    assert paid.status == ChargeStatus.SUCCEEDED


def test_saving_a_card_with_3d_secure(
    gateway: PaymentGateway, server: StripeServer, customer: str
) -> None:
    asked = save(gateway, "pm_card_authenticationRequiredOnSetup", customer)
    assert asked.card is None and asked.reference.startswith("seti_")
    assert asked.redirect_url == f"{server.base_url}/3ds/{asked.reference}"
    assert gateway.card_save_status(asked.reference) == SaveResult(
        None, asked.reference, asked.redirect_url
    )
    back = authenticate(asked.redirect_url, succeed=True)
    assert back["setup_intent"] == [asked.reference]
    assert back["redirect_status"] == ["succeeded"]
    done = gateway.card_save_status(asked.reference)
    assert done is not None and done.card is not None
    assert (done.card.brand, done.card.last4) == ("Visa", "3155")
    assert server.state.payment_methods[done.card.token]["customer"] == customer
    # Set up: it pays off session with no further authentication.
    paid = charge(gateway, done.card.token, customer=customer)
    assert paid.status == ChargeStatus.SUCCEEDED


def test_saving_a_card_whose_3d_secure_failed(
    gateway: PaymentGateway, server: StripeServer, customer: str
) -> None:
    asked = save(gateway, "pm_card_authenticationRequired", customer)
    assert asked.card is None
    back = authenticate(asked.redirect_url, succeed=False)
    assert back["redirect_status"] == ["failed"]
    assert gateway.card_save_status(asked.reference) is None
    method = server.state.setup_intents[asked.reference]["payment_method"]
    assert server.state.payment_methods[method]["customer"] is None


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("pm_card_chargeDeclined", "Your card was declined."),
        ("pm_card_chargeDeclinedInsufficientFunds", "Your card has insufficient funds."),
        ("pm_card_chargeDeclinedProcessingError", "An error occurred while processing your card"),
        ("pm_1NoSuchMethod0123", "does not know that card"),
        ("tok_visa", "could not be read"),
    ],
)
def test_a_card_that_cannot_be_saved_is_rejected_with_the_reason(
    gateway: PaymentGateway, server: StripeServer, customer: str, token: str, message: str
) -> None:
    with pytest.raises(CardRejected, match=message):
        save(gateway, token, customer)
    assert all(m["customer"] != customer for m in server.state.payment_methods.values())


def test_a_save_still_waiting_or_given_up(
    gateway: PaymentGateway, server: StripeServer, customer: str
) -> None:
    asked = save(gateway, "pm_card_authenticationRequired", customer)
    intent = server.state.setup_intents[asked.reference]
    intent.update(status="processing", next_action=None)
    assert gateway.card_save_status(asked.reference) == SaveResult(None, asked.reference)
    intent["status"] = "canceled"
    assert gateway.card_save_status(asked.reference) is None


def test_a_save_whose_answer_was_lost_is_repeated_safely(
    gateway: PaymentGateway, server: StripeServer, customer: str
) -> None:
    server.fail_next("timeout")
    with pytest.raises(OutsideUncertain):
        save(gateway, "pm_card_visa", customer)
    saved = outside_call(lambda: save(gateway, "pm_card_visa", customer), retry_uncertain=True)
    assert saved.card is not None
    assert len(server.state.setup_intents) == 1


# --- card_forget ------------------------------------------------------------------------------


def test_a_forgotten_card_is_detached_at_stripe(
    gateway: PaymentGateway, server: StripeServer, customer: str
) -> None:
    card = save(gateway, "pm_card_visa", customer).card
    assert card is not None
    gateway.card_forget(card.token)
    assert server.state.payment_methods[card.token]["customer"] is None
    gateway.card_forget(card.token)  # a retry after a lost answer: nothing left to do
    gateway.card_forget("pm_1NoSuchMethod0123")  # unknown at Stripe: nothing to do
    detach = f"/v1/payment_methods/{card.token}/detach"
    keys = {r.headers["idempotency-key"] for r in server.requests if r.path == detach}
    assert len(keys) == 1  # the retry is the same request, replayed by Stripe
    assert server.state.payment_methods[card.token]["customer"] is None


# --- the local server itself ---------------------------------------------------------------------


def test_the_local_server_validates_a_cancel_as_stripe_does(server: StripeServer) -> None:
    auth = {"Authorization": f"Bearer {server.secret_key}"}
    created = httpx.post(
        f"{server.base_url}/v1/payment_intents",
        data={"amount": "100", "currency": "eur"},
        headers=auth,
    ).json()
    url = f"{server.base_url}/v1/payment_intents/{created['id']}/cancel"
    bad = httpx.post(url, data={"cancellation_reason": "bored"}, headers=auth)
    assert bad.status_code == 400
    assert "cancellation_reason" in bad.json()["error"]["message"]
    assert len(server.invalid_requests) == 1
    server.invalid_requests.clear()
    done = httpx.post(url, data={"cancellation_reason": "requested_by_customer"}, headers=auth)
    assert done.json()["status"] == "canceled"
    again = httpx.post(url, headers=auth)
    assert again.status_code == 400
    assert again.json()["error"]["code"] == "payment_intent_unexpected_state"
