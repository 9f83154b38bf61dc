"""The payment services' existing card flow (record processing, charge outside any
transaction, settle once; the worker reconciles) with Stripe as the gateway of a stored
card, against the local Stripe server; the webhook and the reconciliation job racing."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account
from clientarea.accounts.tests.factories import access_of
from clientarea.billing import gateways, services
from clientarea.billing.models import Invoice, PaymentMethod, Transaction
from clientarea.billing.stripe_gateway import StripeGateway
from clientarea.notifications.models import OutboxEmail

from .factories import make_invoice
from .stripe_server import StripeServer, running_server

pytestmark = pytest.mark.django_db
SECRET = "whsec_test_payments_0123456789"
KEY = "stripe-pay-key-0123456789"


@pytest.fixture
def server() -> Iterator[StripeServer]:
    with running_server() as srv:
        yield srv
        assert srv.invalid_requests == []


@pytest.fixture
def stripe_gateway(server: StripeServer, settings: Any) -> Iterator[StripeGateway]:
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    gateway = StripeGateway(secret_key=server.secret_key, api_base=server.base_url, timeout=1.0)
    with mock.patch.dict(gateways.GATEWAYS, {gateway.code: gateway}):
        yield gateway


def stored_card(account: Account, token: str) -> PaymentMethod:
    # A card kept at Stripe belongs to the account's customer, made when it was saved.
    gateways.get_gateway("stripe").customer_for(account)
    return PaymentMethod.objects.create(
        account=account,
        gateway="stripe",
        token=token,
        brand="Visa",
        last4="4242",
        exp_month=12,
        exp_year=timezone.localdate().year + 2,
    )


def pay(invoice: Invoice, method: PaymentMethod) -> services.PaymentOutcome:
    return services.invoice_pay(
        invoice_id=invoice.pk,
        access=access_of(invoice.account.owner, invoice.account),
        source=services.PayWithStoredMethod(payment_method_id=method.pk),
        idempotency_key=KEY,
    )


def receipts() -> int:
    return OutboxEmail.objects.filter(subject__startswith="Payment receipt").count()


def after_grace() -> datetime.datetime:
    seconds = django_settings.PENDING_CHANGE_GRACE_SECONDS + 1
    return timezone.now() + datetime.timedelta(seconds=seconds)


def test_a_stored_stripe_card_pays_the_invoice(
    account: Account, stripe_gateway: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    outcome = pay(invoice, stored_card(account, "pm_card_visa"))
    assert outcome.status == "paid"
    assert outcome.transaction is not None
    assert outcome.transaction.reference in server.state.payment_intents
    intent = server.state.payment_intents[outcome.transaction.reference]
    assert intent["amount"] == 12300 and intent["metadata"] == {"transaction": KEY}
    assert len(server.state.charges) == 1
    assert receipts() == 1


def test_a_decline_is_recorded_with_stripes_reason(
    account: Account, stripe_gateway: StripeGateway
) -> None:
    invoice = make_invoice(account)
    outcome = pay(invoice, stored_card(account, "pm_card_chargeDeclinedInsufficientFunds"))
    assert (outcome.status, outcome.message) == ("declined", "Your card has insufficient funds.")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID


def test_lost_answers_leave_it_processing_and_the_worker_settles_it_once(
    account: Account, stripe_gateway: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    card = stored_card(account, "pm_card_visa")
    server.fail_next(*["timeout"] * django_settings.OUTSIDE_CALL_ATTEMPTS)
    outcome = pay(invoice, card)
    assert outcome.status == "processing"
    assert len(server.state.charges) == 1  # charged once, whatever the retries
    assert "settled" in services.payments_reconcile_due(now=after_grace())
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert Transaction.objects.get().status == Transaction.Status.SUCCEEDED
    assert receipts() == 1


def test_the_webhook_settles_it_first_and_the_worker_finds_nothing_to_do(
    account: Account, stripe_gateway: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    card = stored_card(account, "pm_card_visa")
    server.fail_next(*["timeout"] * django_settings.OUTSIDE_CALL_ATTEMPTS)
    assert pay(invoice, card).status == "processing"
    (intent_id,) = server.state.payment_intents
    payload = json.dumps(server.event("payment_intent.succeeded", server.intent(intent_id)))
    answer = Client().post(
        reverse("billing:stripe_webhook"),
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=StripeServer.sign(payload, SECRET),
    )
    assert answer.json()["result"].endswith(": paid")
    assert services.payments_reconcile_due(now=after_grace()) == ""
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert receipts() == 1


def test_a_charge_stripe_never_received_is_failed_by_the_worker(
    account: Account, stripe_gateway: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    card = stored_card(account, "pm_card_visa")
    server.fail_next(*["drop_before"] * django_settings.OUTSIDE_CALL_ATTEMPTS)
    assert pay(invoice, card).status == "processing"
    assert server.state.payment_intents == {}
    assert "1 failed" in services.payments_reconcile_due(now=after_grace())
    assert Transaction.objects.get().status == Transaction.Status.FAILED
