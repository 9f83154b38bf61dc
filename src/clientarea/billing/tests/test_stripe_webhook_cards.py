"""Stripe's webhooks for saved cards and disputes, against the local Stripe server:
setup_intent.succeeded stores the card once per account (whatever came first, however
often it is delivered), and charge.dispute.created is kept and told to staff."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.test import Client

from clientarea.accounts.models import Account
from clientarea.audit.models import AuditEvent
from clientarea.billing import gateways, services
from clientarea.billing.gateways import CardToken
from clientarea.billing.models import PaymentMethod, StripeEvent
from clientarea.billing.stripe_gateway import StripeGateway

from .stripe_helpers import SECRET, deliver, paid_by_stripe
from .stripe_server import StripeServer, running_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def server() -> Iterator[StripeServer]:
    with running_server() as srv:
        yield srv
        assert srv.invalid_requests == []


@pytest.fixture
def gateway(server: StripeServer, settings: Any) -> Iterator[StripeGateway]:
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    stripe = StripeGateway(secret_key=server.secret_key, api_base=server.base_url, timeout=1.0)
    with mock.patch.dict(gateways.GATEWAYS, {stripe.code: stripe}):
        yield stripe


def card_saved(
    gateway: StripeGateway, server: StripeServer, account: Account, card: str = "pm_card_visa"
) -> dict[str, Any]:
    """The owner saved a card in the Payment Element: the SetupIntent as Stripe then
    sends it in setup_intent.succeeded."""
    setup = server._setup_create({"customer": gateway.customer_for(account)})
    server.confirm_setup_intent(setup["id"], card)
    return dict(server.state.setup_intents[setup["id"]])


def method_reads(server: StripeServer) -> int:
    return sum(
        1 for r in server.requests if r.method == "GET" and r.path.startswith("/v1/payment_methods")
    )


def test_the_saved_card_is_stored_once(
    client: Client, gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    setup = card_saved(gateway, server, account, "pm_card_mastercard")
    event = server.event("setup_intent.succeeded", setup)
    answer = deliver(client, event)
    assert answer.status_code == 200
    assert answer.json()["result"].startswith(f"card {setup['payment_method']}: stored")
    method = PaymentMethod.objects.get()
    assert (method.account_id, method.gateway, method.token) == (
        account.pk,
        "stripe",
        setup["payment_method"],
    )
    assert (method.brand, method.last4, method.exp_month) == ("Mastercard", "4444", 12)
    assert AuditEvent.objects.filter(action="payment_method.added").count() == 1
    # Delivered again, and sent again as another event: still one card.
    assert deliver(client, event).json()["state"] == "duplicate"
    again = deliver(client, server.event("setup_intent.succeeded", setup))
    assert "already stored" in again.json()["result"]
    assert PaymentMethod.objects.count() == 1
    assert method_reads(server) == 1


def test_the_card_pages_return_first_leaves_nothing_to_do(
    client: Client, gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    setup = card_saved(gateway, server, account)
    with transaction.atomic():
        services.card_store_once(
            account,
            account.owner,
            "stripe",
            CardToken(setup["payment_method"], "Visa", "4242", 12, 2030),
        )
    answer = deliver(client, server.event("setup_intent.succeeded", setup))
    assert "already stored" in answer.json()["result"]
    assert PaymentMethod.objects.count() == 1
    assert PaymentMethod.objects.get().created_by == account.owner
    assert method_reads(server) == 0  # nothing asked of Stripe


def test_storing_twice_by_either_path_keeps_one_card(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    token = CardToken("pm_once", "Visa", "4242", 12, 2030)
    with transaction.atomic():
        first = services.card_store_once(account, account.owner, "stripe", token)
    with transaction.atomic():
        second = services.card_store_once(account, None, "stripe", token)
    assert first.pk == second.pk
    assert PaymentMethod.objects.count() == 1


def test_a_card_removed_before_the_event_arrives_is_not_stored_again(
    client: Client, gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    setup = card_saved(gateway, server, account)
    gateway.payment_method_detach(setup["payment_method"])
    answer = deliver(client, server.event("setup_intent.succeeded", setup))
    assert "no longer the customer's" in answer.json()["result"]
    assert not PaymentMethod.objects.exists()


def test_a_customer_not_ours_stores_nothing_and_asks_nothing(
    client: Client, gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    setup = card_saved(gateway, server, account)
    setup["customer"] = "cus_of_someone_else"
    answer = deliver(client, server.event("setup_intent.succeeded", setup))
    assert answer.status_code == 200
    assert "no customer of ours" in answer.json()["result"]
    assert not PaymentMethod.objects.exists()
    assert method_reads(server) == 0


def test_stripe_not_answering_is_a_503_and_the_retry_stores_it(
    client: Client, gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    setup = card_saved(gateway, server, account)
    event = server.event("setup_intent.succeeded", setup)
    server.fail_next(*["500"] * django_settings.OUTSIDE_CALL_ATTEMPTS)
    assert deliver(client, event).status_code == 503
    assert not StripeEvent.objects.exists() and not PaymentMethod.objects.exists()
    assert deliver(client, event).json()["state"] == "processed"
    assert PaymentMethod.objects.count() == 1


def test_a_dispute_is_kept_and_told_to_staff_once(
    client: Client,
    gateway: StripeGateway,
    server: StripeServer,
    account: Account,
    caplog: pytest.LogCaptureFixture,
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    charge = server.charge_of(payment.reference)
    dispute = {
        "id": "dp_test_1",
        "object": "dispute",
        "amount": charge["amount"],
        "currency": charge["currency"],
        "charge": charge["id"],
        "payment_intent": payment.reference,
        "reason": "fraudulent",
        "status": "needs_response",
    }
    event = server.event("charge.dispute.created", dispute)
    with caplog.at_level(logging.ERROR, logger="clientarea.billing.stripe_webhooks"):
        answer = deliver(client, event)
        assert deliver(client, event).json()["state"] == "duplicate"
    assert answer.status_code == 200
    assert f"invoice #{invoice.number}" in answer.json()["result"]
    told = [r for r in caplog.records if "dp_test_1" in r.getMessage()]
    assert len(told) == 1 and told[0].levelno == logging.ERROR
    assert f"invoice #{invoice.number} of {account}" in told[0].getMessage()
    assert StripeEvent.objects.get().type == "charge.dispute.created"


def test_staff_find_disputes_and_customers_in_the_back_office(
    client: Client, gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    from django.urls import reverse

    from clientarea.accounts.tests.factories import UserFactory

    invoice, payment = paid_by_stripe(gateway, account)
    customer = gateway.customer_for(account)
    dispute = {"id": "dp_test_2", "object": "dispute", "payment_intent": payment.reference}
    deliver(client, server.event("charge.dispute.created", dispute))
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    events = staff.get(
        reverse("admin:billing_stripeevent_changelist") + "?type=charge.dispute.created"
    )
    assert events.status_code == 200
    assert f"invoice #{invoice.number}" in events.content.decode()
    customers = staff.get(reverse("admin:billing_stripecustomer_changelist"))
    assert customer in customers.content.decode()
