"""Card refunds through Stripe from the back office, against the local Stripe server:
in full and in part, over-refunds and bad input refused, Stripe down, an answer lost and
settled by the worker, a pending refund, and the webhook and the back office recording
one refund once whichever comes first."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.accounts.tests.factories import UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.billing import gateways, refunds, services
from clientarea.billing.models import Invoice, StripeEvent, Transaction
from clientarea.billing.stripe_gateway import StripeGateway
from clientarea.core.registry import PERIODIC_JOBS

from .stripe_helpers import SECRET, deliver, paid_by_stripe
from .stripe_server import StripeServer, running_server

pytestmark = pytest.mark.django_db
D = Decimal


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


@pytest.fixture
def staff() -> User:
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def after_grace() -> datetime.datetime:
    seconds = django_settings.PENDING_CHANGE_GRACE_SECONDS + 1
    return timezone.now() + datetime.timedelta(seconds=seconds)


def refund(payment: Transaction, staff: User, amount: str | None = None) -> refunds.RefundOutcome:
    return refunds.card_refund(
        invoice_id=payment.invoice_id,
        payment_id=payment.pk,
        amount=None if amount is None else D(amount),
        actor=staff,
    )


def refunds_of(payment: Transaction) -> list[tuple[str, Decimal]]:
    return list(
        Transaction.objects.filter(kind="refund", refund_of=payment)
        .order_by("pk")
        .values_list("status", "amount")
    )


def charge_refunded_event(server: StripeServer, payment: Transaction) -> dict[str, Any]:
    return server.event("charge.refunded", server.charge_of(payment.reference))


# --- the service -----------------------------------------------------------------------------


def test_a_full_refund_goes_through_stripe_and_refunds_the_invoice(
    gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    outcome = refund(payment, staff)
    assert outcome.status == "refunded"
    (made,) = server.state.refunds.values()
    assert (made["amount"], made["payment_intent"]) == (10000, payment.reference)
    tx = outcome.transaction
    assert made["metadata"]["refund"] == tx.idempotency_key
    # Our refund's key is the idempotency key Stripe was sent.
    sent = [r for r in server.requests if r.path == "/v1/refunds" and r.method == "POST"]
    assert sent[-1].headers["idempotency-key"] == tx.idempotency_key
    tx.refresh_from_db()
    assert (tx.status, tx.reference, tx.amount) == ("succeeded", made["id"], D("100.00"))
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.REFUNDED
    account.refresh_from_db()
    assert account.credit_balance == D("0.00")  # back to the card, not to credit
    assert AuditEvent.objects.filter(action="invoice.refunded", is_staff_action=True).count() == 1


def test_partial_refunds_up_to_what_is_left(
    gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    assert refund(payment, staff, "30.00").status == "refunded"
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID  # a partial refund leaves it paid
    assert refunds.payment_refundable(invoice, payment) == D("70.00")
    with pytest.raises(refunds.RefundError, match=r"At most 70\.00 EUR"):
        refund(payment, staff, "70.01")
    assert refund(payment, staff).status == "refunded"  # the rest
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.REFUNDED
    assert refunds_of(payment) == [("succeeded", D("30.00")), ("succeeded", D("70.00"))]
    assert server.charge_of(payment.reference)["amount_refunded"] == 10000
    with pytest.raises(refunds.RefundError):
        refund(payment, staff, "1.00")
    assert len(server.state.refunds) == 2


@pytest.mark.parametrize(
    ("amount", "message"),
    [("0", "more than 0"), ("-5", "more than 0"), ("100.01", "At most"), ("1.005", "decimals")],
)
def test_bad_amounts_are_refused_and_nothing_is_done(
    gateway: StripeGateway,
    server: StripeServer,
    account: Account,
    staff: User,
    amount: str,
    message: str,
) -> None:
    _invoice, payment = paid_by_stripe(gateway, account)
    with pytest.raises(refunds.RefundError, match=message):
        refund(payment, staff, amount)
    assert refunds_of(payment) == []
    assert server.state.refunds == {}


def test_stripe_unreachable_refunds_nothing_and_says_so(
    account: Account, staff: User, server: StripeServer, settings: Any
) -> None:
    real = StripeGateway(secret_key=server.secret_key, api_base=server.base_url, timeout=1.0)
    with mock.patch.dict(gateways.GATEWAYS, {"stripe": real}):
        invoice, payment = paid_by_stripe(real, account)
    # Nothing listens there: the connection is refused before anything is sent.
    down = StripeGateway(secret_key=server.secret_key, api_base="http://127.0.0.1:9", timeout=1.0)
    with mock.patch.dict(gateways.GATEWAYS, {"stripe": down}):
        outcome = refund(payment, staff)
    assert outcome.status == "failed"
    assert "could not be reached" in outcome.message
    assert refunds_of(payment) == [("failed", D("100.00"))]
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert server.state.refunds == {}
    # Once Stripe is back, the refund can be made (the failed one is not counted).
    with mock.patch.dict(gateways.GATEWAYS, {"stripe": real}):
        assert refund(payment, staff).status == "refunded"


def test_stripe_refusing_the_refund_is_recorded_as_failed(
    gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    _invoice, payment = paid_by_stripe(gateway, account)
    server.refund_outside(payment.reference, 9000)  # Stripe has only 10.00 left
    outcome = refund(payment, staff, "50.00")
    assert outcome.status == "failed"
    assert "Stripe refused the refund" in outcome.message
    assert outcome.transaction.status == "failed"


def test_an_answer_lost_stays_processing_until_the_worker_settles_it_once(
    gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    server.fail_next(*["timeout"] * django_settings.OUTSIDE_CALL_ATTEMPTS)
    outcome = refund(payment, staff, "40.00")
    assert outcome.status == "processing"
    admin_client = Client()
    admin_client.force_login(staff)
    change = admin_client.get(reverse("admin:billing_invoice_change", args=[invoice.pk]))
    assert "A refund of 40.00 EUR is being processed" in change.content.decode()
    assert len(server.state.refunds) == 1  # made once, whatever the retries
    assert refunds_of(payment) == [("processing", D("40.00"))]
    # Meanwhile nothing more can be refunded, to the card or to credit.
    with pytest.raises(refunds.RefundError, match="still being processed"):
        refund(payment, staff, "1.00")
    with pytest.raises(services.BillingError, match="still being processed"):
        services.invoice_refund(invoice_id=invoice.pk, actor=staff, to_credit=True)
    assert refunds.refunds_reconcile_due() == ""  # not before the grace period
    assert refunds.refunds_reconcile_due(now=after_grace()) == (
        "card refunds: 1 settled, 0 failed, 0 still processing"
    )
    (made,) = server.state.refunds
    assert refunds_of(payment) == [("succeeded", D("40.00"))]
    assert Transaction.objects.get(kind="refund").reference == made
    assert refunds.refunds_reconcile_due(now=after_grace()) == ""
    assert PERIODIC_JOBS["billing.refunds_reconcile"] is refunds.refunds_reconcile_due
    # The payment reconciliation leaves refunds alone.
    assert services.payments_reconcile_due(now=after_grace()) == ""


def test_a_refund_that_never_reached_stripe_is_failed_by_the_worker(
    gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    server.fail_next(*["drop_before"] * django_settings.OUTSIDE_CALL_ATTEMPTS)
    assert refund(payment, staff).status == "processing"
    assert server.state.refunds == {}
    assert "1 failed" in refunds.refunds_reconcile_due(now=after_grace())
    assert refunds_of(payment) == [("failed", D("100.00"))]
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID


def test_a_pending_refund_is_shown_processing_and_settled_by_the_worker(
    gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    server.refund_status.append("pending")
    outcome = refund(payment, staff)
    assert outcome.status == "processing"
    (made,) = server.state.refunds
    assert outcome.transaction.reference == made
    assert "0 settled" in refunds.refunds_reconcile_due(now=after_grace())
    server.settle_refund(made, succeed=True)
    later = after_grace() + datetime.timedelta(hours=2)
    assert "1 settled" in refunds.refunds_reconcile_due(now=later)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.REFUNDED


def test_a_pending_refund_that_fails_at_stripe_is_failed(
    gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    server.refund_status.append("pending")
    refund(payment, staff, "25.00")
    (made,) = server.state.refunds
    server.settle_refund(made, succeed=False)
    assert "1 failed" in refunds.refunds_reconcile_due(now=after_grace())
    tx = Transaction.objects.get(kind="refund")
    assert tx.status == "failed" and "expired or canceled card" in tx.message
    assert refunds.payment_refundable(invoice, payment) == D("100.00")


def test_refunding_the_rest_to_credit_credits_only_what_is_left(
    gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    refund(payment, staff, "30.00")
    tx = services.invoice_refund(invoice_id=invoice.pk, actor=staff, to_credit=True)
    assert tx.amount == D("70.00")
    account.refresh_from_db()
    assert account.credit_balance == D("70.00")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.REFUNDED
    with pytest.raises(services.BillingError):
        services.invoice_refund(invoice_id=invoice.pk, actor=staff, to_credit=True)


# --- the webhook and the back office: one refund, recorded once ---------------------------


def test_the_webhook_after_the_refund_records_nothing_more(
    client: Client, gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    _invoice, payment = paid_by_stripe(gateway, account)
    refund(payment, staff, "60.00")
    event = charge_refunded_event(server, payment)
    answer = deliver(client, event)
    assert answer.status_code == 200, answer.content
    assert "already succeeded" in answer.json()["result"]
    assert deliver(client, event).json()["state"] == "duplicate"
    assert refunds_of(payment) == [("succeeded", D("60.00"))]
    assert AuditEvent.objects.filter(action="invoice.refunded").count() == 1


def test_the_webhook_first_records_the_refund_whose_answer_was_lost(
    client: Client, gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    server.fail_next(*["timeout"] * django_settings.OUTSIDE_CALL_ATTEMPTS)
    assert refund(payment, staff).status == "processing"
    answer = deliver(client, charge_refunded_event(server, payment))
    assert answer.json()["result"].endswith(": succeeded")
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.REFUNDED
    # The worker (and a late answer to the request) find it recorded.
    assert refunds.refunds_reconcile_due(now=after_grace()) == ""
    tx = Transaction.objects.get(kind="refund")
    late = refunds.refund_record(tx.pk, gateway.refund_retrieve(tx.reference))
    assert late.status == "refunded"
    assert refunds_of(payment) == [("succeeded", D("100.00"))]
    assert AuditEvent.objects.filter(action="invoice.refunded").count() == 1


def test_a_refund_made_in_stripes_dashboard_is_recorded_once(
    client: Client, gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    server.refund_outside(payment.reference, 2500)
    event = charge_refunded_event(server, payment)
    assert "made at Stripe: succeeded" in deliver(client, event).json()["result"]
    # The same refund reported again under another event id: still one.
    again = deliver(client, server.event("charge.refunded", event["data"]["object"]))
    assert "already succeeded" in again.json()["result"]
    assert refunds_of(payment) == [("succeeded", D("25.00"))]
    assert refunds.payment_refundable(invoice, payment) == D("75.00")
    assert StripeEvent.objects.count() == 2


def test_a_refund_of_a_payment_not_ours_changes_nothing(
    client: Client, gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    intent = gateway.payment_intent_create(
        amount=D("10.00"),
        currency="EUR",
        idempotency_key="not-ours-0123456789",
        description="elsewhere",
        payment_method="pm_card_visa",
        off_session=True,
    )
    server.refund_outside(intent.id)
    answer = deliver(client, server.event("charge.refunded", server.charge_of(intent.id)))
    assert answer.status_code == 200
    assert "no payment of ours" in answer.json()["result"]
    assert not Transaction.objects.exists()


def test_stripe_unreachable_while_the_webhook_needs_it_answers_503_and_stores_nothing(
    client: Client, gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    _invoice, payment = paid_by_stripe(gateway, account)
    server.refund_outside(payment.reference)
    event = charge_refunded_event(server, payment)
    server.fail_next(*["500"] * django_settings.OUTSIDE_CALL_ATTEMPTS)
    assert deliver(client, event).status_code == 503
    assert not StripeEvent.objects.exists()
    assert deliver(client, event).status_code == 200  # Stripe's retry
    assert refunds_of(payment) == [("succeeded", D("100.00"))]


# --- the back office ---------------------------------------------------------------------


def test_staff_refund_part_of_a_payment_in_the_back_office(
    admin_client: Client, gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    url = reverse("admin:billing_invoice_refund_card", args=[invoice.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and "Refund through Stripe" in page.content.decode()
    answer = admin_client.post(
        url, {"payment": payment.pk, "amount": "12.50", "reason": "requested_by_customer"}
    )
    assert answer.status_code == 302
    assert refunds_of(payment) == [("succeeded", D("12.50"))]
    (made,) = server.state.refunds.values()
    assert made["reason"] == "requested_by_customer"
    change = admin_client.get(answer["Location"]).content.decode()
    assert "12.50 EUR was refunded to the card" in change
    assert url in change  # 87.50 is left: the page links to the refund page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"amount": "lots"}, "Enter the amount to refund as a number"),
        ({"amount": "NaN"}, "Enter the amount to refund as a number"),
        ({"amount": "500"}, "At most 100.00 EUR"),
        ({"amount": "-1"}, "must be more than 0"),
        ({"amount": "1", "reason": "because"}, "Select a valid choice"),
        ({"amount": "1", "payment": "999999"}, "Select a valid choice"),
        ({"amount": "1", "payment": "x"}, "Select a valid choice"),
    ],
)
def test_bad_refund_input_is_a_form_error_not_a_500(
    admin_client: Client,
    gateway: StripeGateway,
    server: StripeServer,
    account: Account,
    data: dict[str, str],
    message: str,
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    url = reverse("admin:billing_invoice_refund_card", args=[invoice.pk])
    answer = admin_client.post(url, {"payment": payment.pk, "reason": ""} | data)
    assert answer.status_code == 200
    assert message in answer.content.decode()
    assert refunds_of(payment) == [] and server.state.refunds == {}


def test_the_refund_page_needs_the_change_permission(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_invoice"))
    client = Client()
    client.force_login(viewer)
    url = reverse("admin:billing_invoice_refund_card", args=[invoice.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"payment": payment.pk, "amount": ""}).status_code == 403
    customer = Client()
    customer.force_login(account.owner)
    assert customer.post(url, {"payment": payment.pk}).status_code in (302, 403)
    assert refunds_of(payment) == []
    # Nor is any refund action offered to a viewer.
    changelist = client.get(reverse("admin:billing_invoice_changelist")).content.decode()
    assert "refund_card" not in changelist and "refund_to_credit" not in changelist


def test_an_invoice_without_a_card_payment_has_nothing_to_refund(
    admin_client: Client, gateway: StripeGateway, account: Account
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    Transaction.objects.filter(pk=payment.pk).update(gateway="sandbox")
    url = reverse("admin:billing_invoice_refund_card", args=[invoice.pk])
    assert "has no Stripe card payment" in admin_client.get(url).content.decode()
    assert admin_client.post(url, {"payment": payment.pk, "amount": "1"}).status_code == 200
    assert not Transaction.objects.filter(kind="refund").exists()


def test_the_refund_action_leads_to_the_refund_page(
    admin_client: Client, gateway: StripeGateway, account: Account
) -> None:
    invoice, _payment = paid_by_stripe(gateway, account)
    answer = admin_client.post(
        reverse("admin:billing_invoice_changelist"),
        {"action": "refund_card", "_selected_action": [invoice.pk]},
    )
    assert answer.status_code == 302
    assert answer["Location"] == reverse("admin:billing_invoice_refund_card", args=[invoice.pk])


def test_only_a_paid_invoice_is_refunded_to_the_card(
    gateway: StripeGateway, server: StripeServer, account: Account, staff: User
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    Invoice.objects.filter(pk=invoice.pk).update(status=Invoice.Status.UNPAID)
    invoice.refresh_from_db()
    with pytest.raises(refunds.RefundError, match="only a paid invoice is refunded to the card"):
        refund(payment, staff)
    assert refunds.refundable_payments(invoice) == []
    assert server.state.refunds == {}


def test_the_customer_never_sees_a_refund_in_flight_as_a_payment_in_flight(
    gateway: StripeGateway,
    server: StripeServer,
    account: Account,
    staff: User,
    login_client: Any,
) -> None:
    invoice, payment = paid_by_stripe(gateway, account)
    server.refund_status.append("pending")
    assert refund(payment, staff).status == "processing"
    page = login_client(account.owner, account).get(
        reverse("billing:invoice_detail", args=[invoice.pk])
    )
    assert page.status_code == 200
    assert "is being processed" not in page.content.decode()


def test_the_back_office_says_when_stripe_is_down_or_silent(
    admin_client: Client, gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    from django.contrib.messages import get_messages

    invoice, payment = paid_by_stripe(gateway, account)
    url = reverse("admin:billing_invoice_refund_card", args=[invoice.pk])
    down = StripeGateway(secret_key=server.secret_key, api_base="http://127.0.0.1:9", timeout=1.0)
    with mock.patch.dict(gateways.GATEWAYS, {"stripe": down}):
        answer = admin_client.post(url, {"payment": payment.pk, "amount": "10"})
    assert answer.status_code == 302
    told = [(m.level_tag, str(m)) for m in get_messages(answer.wsgi_request)]
    assert told == [("error", f"Invoice #{invoice.number}: {refunds.NOT_REACHED}")]
    server.fail_next(*["timeout"] * django_settings.OUTSIDE_CALL_ATTEMPTS)
    answer = admin_client.post(url, {"payment": payment.pk, "amount": "10"})
    assert answer.status_code == 302
    told = [(m.level_tag, str(m)) for m in get_messages(answer.wsgi_request)]
    assert told[-1] == ("warning", f"Invoice #{invoice.number}: {refunds.PROCESSING_MESSAGE}")
    assert refunds_of(payment) == [("failed", D("10.00")), ("processing", D("10.00"))]
