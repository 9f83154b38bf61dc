"""The Stripe driver (the official stripe library) against a local Stripe-compatible
server that validates every request against Stripe's published API description."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from clientarea.billing.gateways import ChargeStatus, PaymentGateway
from clientarea.billing.stripe_gateway import (
    StripeAmountError,
    StripeCardError,
    StripeGateway,
    StripeRequestRefused,
    from_minor,
    to_minor,
)
from clientarea.core.outside import (
    OutsideRefused,
    OutsideUnavailable,
    OutsideUncertain,
    outside_call,
)

from .stripe_server import StripeServer, running_server

D = Decimal
KEY = "tx-key-0123456789abcdef"


@pytest.fixture
def server() -> Iterator[StripeServer]:
    with running_server() as srv:
        yield srv
        # Every request the driver sent was one Stripe's API description allows.
        assert srv.invalid_requests == []


@pytest.fixture
def gateway(server: StripeServer, settings: Any) -> StripeGateway:
    settings.STRIPE_SECRET_KEY = server.secret_key
    settings.STRIPE_API_BASE = server.base_url
    settings.OUTSIDE_CALL_TIMEOUT_SECONDS = 1.0  # short, yet no false timeout on a busy machine
    return StripeGateway()


def pay(gateway: StripeGateway, card: str | None, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "amount": D("123.00"),
        "currency": "EUR",
        "idempotency_key": KEY,
        "description": "INV-1001",
        "payment_method": card,
        "off_session": card is not None,
    }
    options.update(kwargs)
    return gateway.payment_intent_create(**options)


def posted(server: StripeServer, path: str) -> list[dict[str, Any]]:
    return [r.params for r in server.requests if r.method == "POST" and r.path == path]


# --- amounts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("123.45", "EUR", 12345),
        ("0.50", "usd", 50),
        ("500", "JPY", 500),
        ("500.00", "jpy", 500),
        ("15000", "KRW", 15000),
        ("1200", "CLP", 1200),
        ("75", "XOF", 75),
        ("5.12", "KWD", 5120),  # thousandths, last digit 0
        ("5.12", "BHD", 5120),
        ("10.00", "ISK", 1000),  # two-decimal in the API, whole krónur only
        ("19.99", "HUF", 1999),
    ],
)
def test_amounts_in_the_currency_minor_unit(amount: str, currency: str, minor: int) -> None:
    assert to_minor(D(amount), currency) == minor
    assert from_minor(minor, currency) == D(amount)


@pytest.mark.parametrize(
    ("amount", "currency"),
    [("500.50", "JPY"), ("0.5", "KRW"), ("10.50", "ISK"), ("1.005", "EUR")],
)
def test_an_amount_the_currency_cannot_take_is_refused(amount: str, currency: str) -> None:
    with pytest.raises(StripeAmountError):
        to_minor(D(amount), currency)


def test_a_zero_decimal_payment_is_sent_in_whole_units(
    gateway: StripeGateway, server: StripeServer
) -> None:
    intent = pay(gateway, "pm_card_visa", amount=D("5000"), currency="JPY")
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 5000, "jpy")
    assert posted(server, "/v1/payment_intents")[0]["amount"] == "5000"


# --- customers and payment intents --------------------------------------------------------


def test_a_customer_per_account_carries_the_account_id(
    gateway: StripeGateway, server: StripeServer
) -> None:
    customer = gateway.customer_create(account_id=42, email="owner@example.com", name="Acme")
    assert customer.startswith("cus_")
    assert server.state.customers[customer]["metadata"] == {"account_id": "42"}
    assert server.state.customers[customer]["email"] == "owner@example.com"
    # Created twice (a retry): one customer, thanks to the idempotency key.
    assert gateway.customer_create(account_id=42, email="owner@example.com", name="Acme") == (
        customer
    )
    assert len(server.state.customers) == 1


def test_an_intent_for_the_payment_element_gives_the_client_secret(
    gateway: StripeGateway, server: StripeServer
) -> None:
    customer = gateway.customer_create(account_id=1, email="a@example.com", name="A")
    intent = pay(gateway, None, customer=customer, save_card=True)
    assert intent.status == "requires_payment_method"
    assert intent.client_secret.startswith(f"{intent.id}_secret_")
    assert intent.charge_result() is None
    sent = posted(server, "/v1/payment_intents")[0]
    assert sent["amount"] == "12300"
    assert sent["currency"] == "eur"
    assert sent["metadata"] == {"transaction": KEY}
    assert sent["setup_future_usage"] == "off_session"
    assert "confirm" not in sent
    assert server.requests[-1].headers["idempotency-key"] == f"pay-{KEY}"


def test_a_stored_card_pays_off_session(gateway: StripeGateway, server: StripeServer) -> None:
    intent = pay(gateway, "pm_card_visa")
    assert intent.status == "succeeded"
    assert intent.latest_charge.startswith("ch_")
    result = intent.charge_result()
    assert result is not None
    assert (result.status, result.reference) == (ChargeStatus.SUCCEEDED, intent.id)
    sent = posted(server, "/v1/payment_intents")[0]
    assert (sent["confirm"], sent["off_session"], sent["payment_method"]) == (
        "true",
        "true",
        "pm_card_visa",
    )
    assert gateway.payment_intent_retrieve(intent.id) == intent


def test_the_same_idempotency_key_charges_once(
    gateway: StripeGateway, server: StripeServer
) -> None:
    first = pay(gateway, "pm_card_visa")
    again = pay(gateway, "pm_card_visa")
    assert again.id == first.id
    assert len(server.state.payment_intents) == 1
    assert len(server.state.charges) == 1


def test_the_same_key_with_other_parameters_is_refused(
    gateway: StripeGateway, server: StripeServer, caplog: pytest.LogCaptureFixture
) -> None:
    pay(gateway, "pm_card_visa")
    with pytest.raises(OutsideRefused) as refused:
        pay(gateway, "pm_card_visa", amount=D("1.00"))
    assert refused.value.code == "idempotency_error"
    assert len(server.state.charges) == 1
    assert "idempotency_error" in caplog.text  # a bug of ours: staff are told


# --- declines and failures ----------------------------------------------------------------


def test_a_declined_card(gateway: StripeGateway) -> None:
    with pytest.raises(StripeCardError) as declined:
        pay(gateway, "pm_card_chargeDeclined")
    assert str(declined.value) == "Your card was declined."
    assert declined.value.code == "card_declined"
    assert declined.value.decline_code == "generic_decline"
    intent = declined.value.intent
    assert intent is not None and intent.status == "requires_payment_method"
    result = intent.charge_result()
    assert result is not None
    assert (result.status, result.message) == (ChargeStatus.FAILED, "Your card was declined.")


def test_insufficient_funds(gateway: StripeGateway) -> None:
    with pytest.raises(StripeCardError) as declined:
        pay(gateway, "pm_card_chargeDeclinedInsufficientFunds")
    assert str(declined.value) == "Your card has insufficient funds."
    assert declined.value.code == "insufficient_funds"


def test_a_processing_error(gateway: StripeGateway) -> None:
    with pytest.raises(StripeCardError) as failed:
        pay(gateway, "pm_card_chargeDeclinedProcessingError")
    assert failed.value.code == "processing_error"
    assert "error occurred while processing your card" in str(failed.value)


def test_a_decline_is_replayed_not_retried(gateway: StripeGateway, server: StripeServer) -> None:
    for _ in range(2):
        with pytest.raises(StripeCardError):
            pay(gateway, "pm_card_chargeDeclined")
    assert len(server.state.payment_intents) == 1


def test_3d_secure_required_then_failed(gateway: StripeGateway, server: StripeServer) -> None:
    intent = pay(
        gateway,
        "pm_card_authenticationRequired",
        off_session=False,
        return_url="https://clientarea.example/billing/invoices/1/pay/",
    )
    assert intent.status == "requires_action"
    assert intent.redirect_url  # the bank's challenge page
    assert intent.charge_result() is None  # not final: the customer is at the bank
    server.complete_authentication(intent.id, succeed=False)
    after = gateway.payment_intent_retrieve(intent.id)
    assert after.status == "requires_payment_method"
    assert after.error_code == "payment_intent_authentication_failure"
    result = after.charge_result()
    assert result is not None and result.status == ChargeStatus.FAILED
    assert "failed authentication" in result.message


def test_3d_secure_required_then_passed(gateway: StripeGateway, server: StripeServer) -> None:
    intent = pay(
        gateway,
        "pm_card_authenticationRequired",
        off_session=False,
        return_url="https://clientarea.example/return",
    )
    server.complete_authentication(intent.id, succeed=True)
    result = gateway.payment_intent_retrieve(intent.id).charge_result()
    assert result is not None and result.status == ChargeStatus.SUCCEEDED


def test_the_3d_secure_page_sends_the_browser_back(
    gateway: StripeGateway, server: StripeServer
) -> None:
    """The redirect flow a browser test of the pay page will follow."""
    back = "https://clientarea.example/billing/invoices/1/pay/"
    intent = pay(gateway, "pm_card_authenticationRequired", off_session=False, return_url=back)
    assert httpx.get(intent.redirect_url).status_code == 200
    answer = httpx.post(intent.redirect_url, data={"result": "fail"})
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith(f"{back}?payment_intent={intent.id}&")
    assert answer.headers["Location"].endswith("&redirect_status=failed")
    assert gateway.payment_intent_retrieve(intent.id).status == "requires_payment_method"
    assert httpx.get(f"{server.base_url}/3ds/pi_unknown").status_code == 404


def test_3d_secure_off_session_is_declined(gateway: StripeGateway) -> None:
    with pytest.raises(StripeCardError) as declined:
        pay(gateway, "pm_card_authenticationRequired")
    assert declined.value.code == "authentication_required"


def test_confirming_an_intent_with_a_card(gateway: StripeGateway, server: StripeServer) -> None:
    intent = pay(gateway, None)
    confirmed = gateway.payment_intent_confirm(
        intent.id, payment_method="pm_card_visa", idempotency_key=f"{KEY}-confirm"
    )
    assert confirmed.status == "succeeded"


def test_an_intent_is_found_by_our_payment_key(
    gateway: StripeGateway, server: StripeServer
) -> None:
    assert gateway.payment_intent_find(KEY) is None
    intent = pay(gateway, "pm_card_visa")
    pay(gateway, None, idempotency_key="another-key-0123456789")
    found = gateway.payment_intent_find(KEY)
    assert found is not None and (found.id, found.status) == (intent.id, "succeeded")
    assert server.requests[-1].params["query"] == f"metadata['transaction']:'{KEY}'"


def test_an_unknown_intent(gateway: StripeGateway) -> None:
    with pytest.raises(OutsideRefused) as missing:
        gateway.payment_intent_retrieve("pi_doesnotexist")
    assert missing.value.code == "resource_missing"


# --- as the payment services' gateway ------------------------------------------------------


def test_it_is_a_payment_gateway_for_stored_cards(
    gateway: StripeGateway, server: StripeServer
) -> None:
    as_gateway: PaymentGateway = gateway  # the interface invoice_pay and reconciliation use
    paid = as_gateway.charge(
        amount=D("123.00"),
        currency="EUR",
        token="pm_card_visa",
        idempotency_key=KEY,
        description="INV-1001",
    )
    assert paid.status == ChargeStatus.SUCCEEDED and paid.reference.startswith("pi_")
    assert as_gateway.charge_status(KEY) == paid
    assert as_gateway.charge_status("never-sent-0123456789") is None
    declined = as_gateway.charge(
        amount=D("123.00"),
        currency="EUR",
        token="pm_card_authenticationRequired",
        idempotency_key=f"{KEY}-2",
        description="INV-1001",
    )
    assert declined.status == ChargeStatus.DECLINED
    assert "requires authentication" in declined.message
    failed = as_gateway.charge_status(f"{KEY}-2")
    assert failed is not None and failed.status == ChargeStatus.FAILED


def test_a_payment_still_processing_at_stripe_is_pending(
    gateway: StripeGateway, server: StripeServer
) -> None:
    intent = pay(gateway, None)
    server.state.payment_intents[intent.id]["status"] = "processing"
    pending = gateway.charge_status(KEY)
    assert pending is not None and pending.status == ChargeStatus.PENDING


# --- the network ----------------------------------------------------------------------------


def test_a_timeout_after_sending_is_uncertain_and_a_retry_charges_once(
    gateway: StripeGateway, server: StripeServer
) -> None:
    server.fail_next("timeout")
    with pytest.raises(OutsideUncertain):
        pay(gateway, "pm_card_visa")
    assert len(server.state.charges) == 1  # it was charged; the answer was lost
    server.fail_next("timeout")
    intent = outside_call(lambda: pay(gateway, "pm_card_visa"), retry_uncertain=True)
    assert intent.status == "succeeded"
    assert len(server.state.charges) == 1


@pytest.mark.parametrize("failure", ["drop", "drop_before", "500"])
def test_no_answer_is_uncertain(gateway: StripeGateway, server: StripeServer, failure: str) -> None:
    server.fail_next(failure)
    with pytest.raises(OutsideUncertain):
        pay(gateway, "pm_card_visa")
    server.fail_next(failure)
    intent = outside_call(lambda: pay(gateway, "pm_card_visa"), retry_uncertain=True)
    assert intent.status == "succeeded"
    assert len(server.state.charges) == 1


def test_rate_limited_is_unavailable(gateway: StripeGateway, server: StripeServer) -> None:
    server.fail_next("429")
    with pytest.raises(OutsideUnavailable):
        pay(gateway, "pm_card_visa")
    assert server.state.charges == {}
    server.fail_next("429")
    assert outside_call(lambda: pay(gateway, "pm_card_visa")).status == "succeeded"


def test_a_processor_that_cannot_be_reached_is_unavailable(settings: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gateway = StripeGateway(secret_key="sk_test_x", api_base=f"http://127.0.0.1:{port}")
    with pytest.raises(OutsideUnavailable):
        pay(gateway, "pm_card_visa")


def test_a_wrong_key_is_unavailable_and_logged_for_staff_without_the_key(
    server: StripeServer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "sk_test_wrongkey0123456789"
    gateway = StripeGateway(secret_key=wrong, api_base=server.base_url)
    with caplog.at_level(logging.DEBUG), pytest.raises(OutsideUnavailable):
        pay(gateway, "pm_card_visa")
    assert "STRIPE_SECRET_KEY" in caplog.text
    assert wrong not in caplog.text
    assert server.state.charges == {}


def test_no_log_record_holds_the_secret_key(
    gateway: StripeGateway, server: StripeServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        customer = gateway.customer_create(account_id=1, email="a@example.com", name="A")
        pay(gateway, "pm_card_visa", customer=customer)
        with pytest.raises(StripeCardError):
            pay(gateway, "pm_card_chargeDeclined", idempotency_key=f"{KEY}-2")
        server.fail_next("500")
        with pytest.raises(OutsideUncertain):
            gateway.payment_intent_retrieve("pi_x")
    assert caplog.records  # the library and httpx did log
    for record in caplog.records:
        assert server.secret_key not in record.getMessage()
        assert server.secret_key not in str(record.args)
    assert server.secret_key not in repr(gateway)


# --- saving, showing and removing cards, refunds ----------------------------------------------


def test_a_setup_intent_saves_a_card_shown_by_brand_last4_and_expiry(
    gateway: StripeGateway, server: StripeServer
) -> None:
    customer = gateway.customer_create(account_id=7, email="a@example.com", name="A")
    setup = gateway.setup_intent_create(customer=customer, idempotency_key="setup-key-1")
    assert setup.status == "requires_payment_method"
    assert setup.client_secret.startswith(f"{setup.id}_secret_")
    pm = server.confirm_setup_intent(setup.id, "pm_card_mastercard")  # the browser's part
    done = gateway.setup_intent_retrieve(setup.id)
    assert (done.status, done.payment_method, done.customer) == ("succeeded", pm, customer)
    card = gateway.payment_method_retrieve(pm)
    assert (card.brand, card.last4, card.customer) == ("mastercard", "4444", customer)
    assert 1 <= card.exp_month <= 12 and card.exp_year > 2000
    # Paying with it later, off session.
    assert pay(gateway, pm, customer=customer).status == "succeeded"


def test_removing_a_card_detaches_it_even_when_retried(
    gateway: StripeGateway, server: StripeServer
) -> None:
    customer = gateway.customer_create(account_id=7, email="a@example.com", name="A")
    setup = gateway.setup_intent_create(customer=customer)
    pm = server.confirm_setup_intent(setup.id)
    gateway.payment_method_detach(pm)
    assert server.state.payment_methods[pm]["customer"] is None
    gateway.payment_method_detach(pm)  # a retry after a lost answer: done already
    gateway.payment_method_detach("pm_gone")  # no such card at Stripe: nothing to do


def test_full_and_partial_refunds(gateway: StripeGateway, server: StripeServer) -> None:
    intent = pay(gateway, "pm_card_visa")
    part = gateway.refund_create(
        payment_intent=intent.id, amount=D("23.00"), currency="EUR", idempotency_key="refund-1"
    )
    assert (part.status, part.amount, part.payment_intent) == ("succeeded", 2300, intent.id)
    # The same refund retried is not made twice.
    gateway.refund_create(
        payment_intent=intent.id, amount=D("23.00"), currency="EUR", idempotency_key="refund-1"
    )
    rest = gateway.refund_create(
        payment_intent=intent.id, idempotency_key="refund-2", reason="requested_by_customer"
    )
    assert rest.amount == 10000
    charge = server.state.charges[intent.latest_charge]
    assert (charge["amount_refunded"], charge["refunded"]) == (12300, True)
    with pytest.raises(StripeRequestRefused) as refused:
        gateway.refund_create(
            payment_intent=intent.id, amount=D("1.00"), currency="EUR", idempotency_key="refund-3"
        )
    assert "greater than unrefunded amount" in refused.value.detail  # for staff
    assert "nothing was charged" in str(refused.value)


# --- the server's own validation -------------------------------------------------------------


def test_the_local_server_refuses_what_stripe_would(server: StripeServer) -> None:
    auth = {"Authorization": f"Bearer {server.secret_key}"}

    def post(path: str, data: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{server.base_url}{path}", data=data, headers=auth)

    unknown = post("/v1/payment_intents", {"amount": "100", "currency": "eur", "colour": "red"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["message"] == "Received unknown parameter: colour"
    missing = post("/v1/payment_intents", {"currency": "eur"})
    assert missing.json()["error"]["message"] == "Missing required param: amount."
    not_integer = post("/v1/payment_intents", {"amount": "1.5", "currency": "eur"})
    assert not_integer.json()["error"]["message"] == "Invalid integer: 1.5"
    bad_enum = post("/v1/setup_intents", {"usage": "sometimes"})
    assert bad_enum.status_code == 400
    nested = post(
        "/v1/payment_intents",
        {"amount": "100", "currency": "eur", "automatic_payment_methods[colour]": "x"},
    )
    assert "automatic_payment_methods[colour]" in nested.json()["error"]["message"]
    assert len(server.invalid_requests) == 5
    no_key = httpx.get(f"{server.base_url}/v1/customers/cus_x")
    assert no_key.status_code == 401
    server.invalid_requests.clear()
