"""Helpers of the tests of Stripe customers, stored cards and refunds, against the local
Stripe server: an invoice paid by a Stripe card, signed webhook deliveries."""

from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any

from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account
from clientarea.billing import services
from clientarea.billing.models import Invoice, Transaction
from clientarea.billing.stripe_gateway import StripeGateway
from clientarea.billing.totals import LineInput

from .stripe_server import StripeServer

SECRET = "whsec_test_refunds_0123456789abc"


def issue_invoice(account: Account, price: str = "100.00") -> Invoice:
    today = timezone.localdate()
    return services.invoice_create(
        account=account,
        lines=[LineInput("Business Hosting (monthly)", Decimal("1"), Decimal(price), Decimal("0"))],
        issue_date=today,
        due_date=today + datetime.timedelta(days=14),
    )


def paid_by_stripe(
    gateway: StripeGateway, account: Account, *, price: str = "100.00", card: str = "pm_card_visa"
) -> tuple[Invoice, Transaction]:
    """An invoice paid in full by a Stripe card payment that Stripe really made (a
    PaymentIntent of the local server), recorded as the payment services record it."""
    invoice = issue_invoice(account, price)
    key = f"pay-{invoice.pk}-0123456789abcdef"
    intent = gateway.payment_intent_create(
        amount=invoice.total,
        currency=invoice.currency,
        idempotency_key=key,
        description=f"INV-{invoice.number}",
        payment_method=card,
        off_session=True,
    )
    assert intent.status == "succeeded"
    tx = Transaction.objects.create(
        invoice=invoice,
        account=account,
        status=Transaction.Status.SUCCEEDED,
        gateway="stripe",
        amount=invoice.total,
        currency=invoice.currency,
        reference=intent.id,
        idempotency_key=key,
        payer=account.owner,
        method_label="Visa ending in 4242",
        confirmed_at=timezone.now(),
    )
    Invoice.objects.filter(pk=invoice.pk).update(
        amount_paid=F("total"), status=Invoice.Status.PAID, paid_at=timezone.now()
    )
    invoice.refresh_from_db()
    return invoice, tx


def deliver(client: Client, event: dict[str, Any], secret: str = SECRET) -> Any:
    payload = json.dumps(event)
    return client.post(
        reverse("billing:stripe_webhook"),
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=StripeServer.sign(payload, secret),
    )
