"""Stripe's webhooks: signatures (valid, bad, stale, several), each event processed once
whatever the retries and the order, and every case ending with exactly one payment."""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account
from clientarea.billing import services, stripe_webhooks
from clientarea.billing.gateways import ChargeResult, ChargeStatus
from clientarea.billing.models import Invoice, StripeEvent, Transaction
from clientarea.billing.stripe_gateway import StripeCardError, StripeGateway
from clientarea.notifications.models import OutboxEmail

from .factories import make_invoice
from .stripe_server import StripeServer, running_server

pytestmark = pytest.mark.django_db
SECRET = "whsec_test_0123456789abcdefghijklmnop"
KEY = "stripe-tx-key-0123456789"


@pytest.fixture
def server() -> Iterator[StripeServer]:
    with running_server() as srv:
        yield srv
        assert srv.invalid_requests == []


@pytest.fixture
def gateway(server: StripeServer, settings: Any) -> StripeGateway:
    settings.STRIPE_SECRET_KEY = server.secret_key
    settings.STRIPE_API_BASE = server.base_url
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    return StripeGateway()


@pytest.fixture
def payment(account: Account) -> Transaction:
    """A Stripe card payment recorded as processing (step A of invoice_pay)."""
    invoice = make_invoice(account)
    return Transaction.objects.create(
        invoice=invoice,
        account=account,
        status=Transaction.Status.PROCESSING,
        gateway="stripe",
        amount=invoice.balance,
        currency=invoice.currency,
        idempotency_key=KEY,
        payer=account.owner,
        method_label="Visa ending in 4242",
        next_check_at=timezone.now() + datetime.timedelta(minutes=2),
    )


def intent_for(gateway: StripeGateway, tx: Transaction, card: str | None) -> str:
    try:
        return gateway.payment_intent_create(
            amount=tx.amount,
            currency=tx.currency,
            idempotency_key=tx.idempotency_key,
            description="INV",
            payment_method=card,
            off_session=card is not None,
        ).id
    except StripeCardError as exc:
        assert exc.intent is not None
        return exc.intent.id


def deliver(
    client: Client,
    event: dict[str, Any],
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    header: str | None = None,
) -> Any:
    payload = json.dumps(event)
    return client.post(
        reverse("billing:stripe_webhook"),
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=header or StripeServer.sign(payload, secret, timestamp=timestamp),
    )


@pytest.fixture
def client() -> Client:
    return Client(enforce_csrf_checks=True)  # Stripe sends no CSRF token


def paid(tx: Transaction) -> tuple[str, str, Decimal]:
    tx.refresh_from_db()
    invoice = Invoice.objects.get(pk=tx.invoice_id)
    return tx.status, invoice.status, invoice.amount_paid


def receipts() -> int:
    return OutboxEmail.objects.filter(subject__startswith="Payment receipt").count()


# --- signatures ---------------------------------------------------------------------------


def test_a_signed_success_marks_the_invoice_paid(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    intent = intent_for(gateway, payment, "pm_card_visa")
    answer = deliver(client, server.event("payment_intent.succeeded", server.intent(intent)))
    assert answer.status_code == 200
    assert answer.json()["state"] == "processed"
    assert paid(payment) == ("succeeded", "paid", payment.amount)
    assert payment.reference == intent
    assert StripeEvent.objects.get().result == f"payment {payment.pk}: paid"
    assert receipts() == 1


def test_a_bad_signature_is_refused_and_nothing_is_done(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    event = server.event(
        "payment_intent.succeeded", server.intent(intent_for(gateway, payment, "pm_card_visa"))
    )
    assert deliver(client, event, secret="whsec_someone_else").status_code == 400
    payload = json.dumps(event)
    tampered = StripeServer.sign(payload, SECRET).replace("v1=", "v1=0")
    assert deliver(client, event, header=tampered).status_code == 400
    signed_other = StripeServer.sign(payload + " ", SECRET)
    assert deliver(client, event, header=signed_other).status_code == 400
    assert deliver(client, event, header="garbage").status_code == 400
    no_header = client.post(
        reverse("billing:stripe_webhook"), data=payload, content_type="application/json"
    )
    assert no_header.status_code == 400
    assert paid(payment)[0] == "processing"
    assert not StripeEvent.objects.exists()


def test_a_stale_or_future_timestamp_is_refused(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    event = server.event(
        "payment_intent.succeeded", server.intent(intent_for(gateway, payment, "pm_card_visa"))
    )
    now = int(time.time())
    assert deliver(client, event, timestamp=now - 301).status_code == 400
    assert deliver(client, event, timestamp=now + 301).status_code == 400
    assert paid(payment)[0] == "processing"
    assert deliver(client, event, timestamp=now - 250).status_code == 200
    assert paid(payment)[0] == "succeeded"


def test_any_of_several_signatures_may_match(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    """While the endpoint secret is being rolled, Stripe signs with both secrets."""
    event = server.event(
        "payment_intent.succeeded", server.intent(intent_for(gateway, payment, "pm_card_visa"))
    )
    payload = json.dumps(event)
    now = int(time.time())
    old = StripeServer.sign(payload, "whsec_old_secret", timestamp=now).split(",")[1]
    new = StripeServer.sign(payload, SECRET, timestamp=now).split(",")[1]
    assert deliver(client, event, header=f"t={now},{old},{new}").status_code == 200
    assert paid(payment)[0] == "succeeded"


def test_without_a_webhook_secret_nothing_is_accepted(
    client: Client,
    gateway: StripeGateway,
    server: StripeServer,
    payment: Transaction,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = server.event(
        "payment_intent.succeeded", server.intent(intent_for(gateway, payment, "pm_card_visa"))
    )
    settings.STRIPE_WEBHOOK_SECRET = ""
    assert deliver(client, event).status_code == 400
    assert "STRIPE_WEBHOOK_SECRET" in caplog.text
    assert paid(payment)[0] == "processing"


def test_only_post_and_a_real_event(client: Client, gateway: StripeGateway) -> None:
    url = reverse("billing:stripe_webhook")
    assert client.get(url).status_code == 405
    payload = "not json"
    answer = client.post(
        url,
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=StripeServer.sign(payload, SECRET),
    )
    assert answer.status_code == 400
    assert deliver(client, {"id": "evt_1", "type": "x"}).status_code == 400


# --- once only, any order -------------------------------------------------------------------


def test_a_duplicated_event_is_processed_once(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    event = server.event(
        "payment_intent.succeeded", server.intent(intent_for(gateway, payment, "pm_card_visa"))
    )
    assert deliver(client, event).json()["state"] == "processed"
    again = deliver(client, event)
    assert (again.status_code, again.json()["state"]) == (200, "duplicate")
    assert StripeEvent.objects.count() == 1
    assert paid(payment) == ("succeeded", "paid", payment.amount)
    assert receipts() == 1


def test_two_events_for_one_payment_record_it_once(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    """Stripe may send one change as two events (different ids)."""
    intent = server.intent(intent_for(gateway, payment, "pm_card_visa"))
    deliver(client, server.event("payment_intent.succeeded", intent))
    deliver(client, server.event("payment_intent.succeeded", intent))
    assert StripeEvent.objects.count() == 2
    assert paid(payment) == ("succeeded", "paid", payment.amount)
    assert Transaction.objects.filter(status="succeeded").count() == 1
    assert receipts() == 1


def test_a_late_failure_does_not_undo_a_success(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    intent = intent_for(gateway, payment, "pm_card_visa")
    failed = server.intent(intent) | {
        "status": "requires_payment_method",
        "last_payment_error": {"type": "card_error", "code": "card_declined", "message": "No."},
    }
    deliver(client, server.event("payment_intent.succeeded", server.intent(intent)))
    deliver(client, server.event("payment_intent.payment_failed", failed))
    assert paid(payment) == ("succeeded", "paid", payment.amount)


def test_a_failure_then_a_success_of_the_same_intent_ends_paid_once(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    """The customer's first card was declined, the second one (same intent) paid."""
    intent = intent_for(gateway, payment, None)
    with pytest.raises(StripeCardError):
        gateway.payment_intent_confirm(
            intent, payment_method="pm_card_chargeDeclined", idempotency_key="confirm-1"
        )
    declined = server.intent(intent)
    assert (
        deliver(client, server.event("payment_intent.payment_failed", declined)).status_code == 200
    )
    payment.refresh_from_db()
    assert (payment.status, payment.message) == ("failed", "Your card was declined.")
    gateway.payment_intent_confirm(
        intent, payment_method="pm_card_visa", idempotency_key="confirm-2"
    )
    deliver(client, server.event("payment_intent.succeeded", server.intent(intent)))
    assert paid(payment) == ("succeeded", "paid", payment.amount)
    assert receipts() == 1


def test_processing_then_succeeded(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    intent = server.intent(intent_for(gateway, payment, "pm_card_visa"))
    processing = intent | {"status": "processing"}
    answer = deliver(client, server.event("payment_intent.processing", processing))
    assert answer.json()["result"] == "still processing"
    assert paid(payment)[0] == "processing"
    deliver(client, server.event("payment_intent.succeeded", intent))
    assert paid(payment)[0] == "succeeded"


def test_a_declined_payment_is_recorded_with_its_reason(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    intent = intent_for(gateway, payment, "pm_card_chargeDeclinedInsufficientFunds")
    deliver(client, server.event("payment_intent.payment_failed", server.intent(intent)))
    payment.refresh_from_db()
    assert (payment.status, payment.message) == ("failed", "Your card has insufficient funds.")
    assert Invoice.objects.get(pk=payment.invoice_id).status == "unpaid"


def test_the_webhook_before_the_browser_return_records_one_payment(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    intent = intent_for(gateway, payment, "pm_card_visa")
    deliver(client, server.event("payment_intent.succeeded", server.intent(intent)))
    # The paying request (or the browser's return) learns the same answer afterwards.
    outcome = services.card_payment_record(payment.pk, ChargeResult(ChargeStatus.SUCCEEDED, intent))
    assert outcome.message == "This payment was already recorded."
    assert paid(payment) == ("succeeded", "paid", payment.amount)
    assert receipts() == 1


def test_the_browser_return_before_the_webhook_records_one_payment(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    intent = intent_for(gateway, payment, "pm_card_visa")
    services.card_payment_record(payment.pk, ChargeResult(ChargeStatus.SUCCEEDED, intent))
    assert (
        deliver(client, server.event("payment_intent.succeeded", server.intent(intent))).status_code
        == 200
    )
    assert paid(payment) == ("succeeded", "paid", payment.amount)
    assert receipts() == 1


def test_a_failed_processing_is_not_stored_so_the_retry_processes_it(
    client: Client,
    gateway: StripeGateway,
    server: StripeServer,
    payment: Transaction,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = server.event(
        "payment_intent.succeeded", server.intent(intent_for(gateway, payment, "pm_card_visa"))
    )
    with mock.patch.object(
        stripe_webhooks, "payment_settle_from_gateway", side_effect=RuntimeError("db down")
    ):
        answer = deliver(client, event)
    assert answer.status_code == 503  # Stripe delivers it again; never a 500
    assert not StripeEvent.objects.exists()
    assert paid(payment)[0] == "processing"
    assert deliver(client, event).json()["state"] == "processed"
    assert paid(payment)[0] == "succeeded"


def test_an_amount_that_differs_is_not_settled(
    client: Client,
    gateway: StripeGateway,
    server: StripeServer,
    payment: Transaction,
    caplog: pytest.LogCaptureFixture,
) -> None:
    intent = server.intent(intent_for(gateway, payment, "pm_card_visa"))
    intent.update(amount=100, amount_received=100)
    answer = deliver(client, server.event("payment_intent.succeeded", intent))
    assert "amount differs" in answer.json()["result"]
    assert paid(payment)[0] == "processing"
    assert "not settled" in caplog.text


def test_an_intent_that_is_not_ours_changes_nothing(
    client: Client, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    intent = server.intent(intent_for(gateway, payment, "pm_card_visa"))
    intent["metadata"] = {}
    answer = deliver(client, server.event("payment_intent.succeeded", intent))
    assert answer.json()["result"] == "no payment of ours"
    assert paid(payment)[0] == "processing"


# --- the other events ------------------------------------------------------------------------


def test_an_unknown_event_type_is_ignored(client: Client, gateway: StripeGateway) -> None:
    answer = deliver(client, {"id": "evt_x", "type": "customer.created", "data": {"object": {}}})
    assert (answer.status_code, answer.json()["state"]) == (200, "ignored")
    assert not StripeEvent.objects.exists()


def test_refund_dispute_and_saved_card_events_are_recorded(
    client: Client,
    gateway: StripeGateway,
    server: StripeServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    charge = {
        "id": "ch_1",
        "object": "charge",
        "amount_refunded": 500,
        "currency": "eur",
        "payment_intent": "pi_1",
    }
    dispute = {
        "id": "dp_1",
        "object": "dispute",
        "charge": "ch_1",
        "amount": 500,
        "currency": "eur",
        "reason": "fraudulent",
    }
    setup = {
        "id": "seti_1",
        "object": "setup_intent",
        "payment_method": "pm_1",
        "customer": "cus_1",
        "status": "succeeded",
    }
    for kind, obj in (
        ("charge.refunded", charge),
        ("charge.dispute.created", dispute),
        ("setup_intent.succeeded", setup),
    ):
        assert deliver(client, server.event(kind, obj)).status_code == 200
    assert sorted(StripeEvent.objects.values_list("type", flat=True)) == [
        "charge.dispute.created",
        "charge.refunded",
        "setup_intent.succeeded",
    ]
    assert "dispute dp_1" in caplog.text  # staff are told


def test_no_log_record_holds_a_secret(
    client: Client,
    gateway: StripeGateway,
    server: StripeServer,
    payment: Transaction,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        intent = intent_for(gateway, payment, "pm_card_visa")
        event = server.event("payment_intent.succeeded", server.intent(intent))
        deliver(client, event, secret="whsec_wrong")
        deliver(client, event)
    for record in caplog.records:
        text = f"{record.getMessage()} {record.args}"
        assert SECRET not in text
        assert server.secret_key not in text


def test_events_over_http(
    live_server: Any, gateway: StripeGateway, server: StripeServer, payment: Transaction
) -> None:
    """The helper that posts signed events, against the real endpoint."""
    event = server.event(
        "payment_intent.succeeded", server.intent(intent_for(gateway, payment, "pm_card_visa"))
    )
    url = f"{live_server.url}{reverse('billing:stripe_webhook')}"
    assert server.send_event(url, event, SECRET).status_code == 200
    assert server.send_event(url, event, "whsec_wrong").status_code == 400
    assert paid(payment)[0] == "succeeded"
