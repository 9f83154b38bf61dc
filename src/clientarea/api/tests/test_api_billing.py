"""Invoices' PDF and paying an invoice over the API, from the attacker's side: another
account's invoice and stored card, a token without invoices, a token whose creator was
revoked; what paying does (one payment and one receipt per Idempotency-Key, a replay
answered as the first time, the same key with another body refused), against the sandbox
and the local Stripe-compatible server (a declined card, a card that needs 3-D Secure)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.services import membership_revoke
from clientarea.audit.models import AuditEvent
from clientarea.billing import gateways, services
from clientarea.billing.models import CreditEntry, Invoice, PaymentMethod, Transaction
from clientarea.billing.stripe_gateway import StripeGateway
from clientarea.billing.tests.factories import DECLINED_CARD, make_invoice, make_payment_method
from clientarea.billing.tests.pdf_text import pdf_text
from clientarea.billing.tests.stripe_server import running_server
from clientarea.notifications.models import OutboxEmail

from .helpers import assert_problem, make_token

pytestmark = pytest.mark.django_db
BALANCE = Decimal("123.00")  # what make_invoice's one line costs with its VAT


def pay(
    secret: str | None,
    invoice_id: int,
    body: Any,
    key: str | None = "order-42-attempt-1",
    client: Client | None = None,
) -> Any:
    extra: dict[str, Any] = {}
    if secret is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    if key is not None:
        extra["HTTP_IDEMPOTENCY_KEY"] = key
    return (client or Client()).post(
        f"/api/v1/invoices/{invoice_id}/pay",
        json.dumps(body),
        content_type="application/json",
        **extra,
    )


def receipts() -> int:
    return OutboxEmail.objects.filter(subject__startswith="Payment receipt").count()


def state(invoice: Invoice) -> tuple[Any, ...]:
    """What paying changes: compared before and after a refused request."""
    invoice.refresh_from_db()
    invoice.account.refresh_from_db()
    return (
        invoice.status,
        invoice.amount_paid,
        invoice.account.credit_balance,
        Transaction.objects.count(),
        CreditEntry.objects.count(),
        receipts(),
        AuditEvent.objects.filter(action__startswith="invoice.payment").count(),
    )


def give_credit(account: Account, amount: str = "500.00") -> None:
    services.credit_add(
        account_id=account.pk, amount=Decimal(amount), reason="t", actor=account.owner
    )


@pytest.fixture(autouse=True)
def _fresh_sandbox() -> Iterator[None]:
    # The sandbox remembers its answers by idempotency key, and a token's id (so its
    # keys) may come again in the next test's database.
    gateways.SANDBOX.reset()
    yield
    gateways.SANDBOX.reset()


@pytest.fixture
def charges() -> Iterator[mock.MagicMock]:
    with mock.patch.object(gateways.SANDBOX, "charge", wraps=gateways.SANDBOX.charge) as spy:
        yield spy


# --- the PDF ------------------------------------------------------------------------------


def test_the_pdf_is_the_pages_pdf_as_an_attachment(account: Account, login_client: Any) -> None:
    invoice = make_invoice(account)
    _, secret = make_token(account)
    response = Client().get(
        f"/api/v1/invoices/{invoice.pk}/pdf", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        f'attachment; filename="invoice-{invoice.number}.pdf"'
    )
    assert response.content.startswith(b"%PDF")
    from_page = login_client(account.owner, account).get(
        reverse("billing:invoice_pdf", args=[invoice.pk])
    )
    assert from_page.status_code == 200
    assert pdf_text(response.content) == pdf_text(from_page.content)
    assert f"#{invoice.number}" in pdf_text(response.content) or str(invoice.number) in pdf_text(
        response.content
    )


def test_the_pdf_answers_a_client_asking_for_a_pdf_and_refuses_as_problems(
    account: Account, other_account: Account, member_factory: Any
) -> None:
    invoice = make_invoice(account)
    theirs = make_invoice(other_account)
    _, secret = make_token(account)
    asked = Client().get(
        f"/api/v1/invoices/{invoice.pk}/pdf",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
        HTTP_ACCEPT="application/pdf",
    )
    assert asked.status_code == 200 and asked.content.startswith(b"%PDF")
    other = Client().get(
        f"/api/v1/invoices/{theirs.pk}/pdf",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
        HTTP_ACCEPT="application/pdf",
    )
    assert_problem(other, 404)
    _, no_invoices = make_token(account, codes=("domains",))
    assert_problem(
        Client().get(
            f"/api/v1/invoices/{invoice.pk}/pdf", HTTP_AUTHORIZATION=f"Bearer {no_invoices}"
        ),
        403,
        "permission_missing",
    )
    assert_problem(Client().get(f"/api/v1/invoices/{invoice.pk}/pdf"), 401)
    assert_problem(
        Client().get(f"/api/v1/invoices/{2**63}/pdf", HTTP_AUTHORIZATION=f"Bearer {secret}"), 404
    )


# --- paying with credit ---------------------------------------------------------------------


def test_paying_with_credit_pays_once_and_a_replay_answers_the_same(account: Account) -> None:
    give_credit(account)
    invoice = make_invoice(account)
    _, secret = make_token(account)
    first = pay(secret, invoice.pk, {"method": "credit"})
    assert first.status_code == 200, first.content
    body = first.json()
    assert body["status"] == "paid"
    assert body["invoice"]["id"] == invoice.pk and body["invoice"]["status"] == "paid"
    assert body["invoice"]["balance"] == "0.00"
    assert body["transaction"]["amount"] == "123.00"
    again = pay(secret, invoice.pk, {"method": "credit"})
    assert again.status_code == 200 and again.json() == body
    account.refresh_from_db()
    assert account.credit_balance == Decimal("500.00") - BALANCE
    assert Transaction.objects.filter(invoice=invoice).count() == 1
    assert receipts() == 1
    assert AuditEvent.objects.filter(action="invoice.payment").count() == 1


def test_the_same_key_with_another_body_is_a_409_and_pays_nothing(account: Account) -> None:
    give_credit(account)
    invoice = make_invoice(account)
    card = make_payment_method(account)
    _, secret = make_token(account)
    before = state(invoice)
    assert (
        pay(secret, invoice.pk, {"method": "stored_card", "payment_method": card.pk}).status_code
        == 200
    )
    paid = state(invoice)
    assert paid != before
    reused = pay(secret, invoice.pk, {"method": "credit"})
    assert_problem(reused, 409, "idempotency_key_reused")
    # Another invoice with the same key is another request too.
    other_invoice = make_invoice(account)
    assert_problem(
        pay(secret, other_invoice.pk, {"method": "credit"}), 409, "idempotency_key_reused"
    )
    assert state(invoice) == paid
    assert other_invoice.transactions.count() == 0


def test_two_tokens_never_share_a_key(account: Account) -> None:
    give_credit(account)
    first, second = make_invoice(account), make_invoice(account)
    _, one = make_token(account, name="one")
    _, two = make_token(account, name="two")
    assert pay(one, first.pk, {"method": "credit"}).status_code == 200
    assert pay(two, second.pk, {"method": "credit"}).status_code == 200
    assert Transaction.objects.filter(status="succeeded").count() == 2


def test_without_credit_it_is_a_400_and_part_of_the_balance_is_a_partial_payment(
    account: Account,
) -> None:
    invoice = make_invoice(account)
    _, secret = make_token(account)
    before = state(invoice)
    refused = assert_problem(pay(secret, invoice.pk, {"method": "credit"}), 400, "refused")
    assert "no credit balance" in refused["detail"]
    assert state(invoice) == before
    give_credit(account, "23.00")
    # Refusals are not kept: the same key pays once there is credit.
    part = pay(secret, invoice.pk, {"method": "credit"})
    assert part.status_code == 200
    assert part.json()["status"] == "partial" and part.json()["invoice"]["balance"] == "100.00"


@pytest.mark.parametrize(
    ("header", "why"),
    [
        (None, "Send an Idempotency-Key"),
        ("", "Send an Idempotency-Key"),
        ("k" * 256, "255"),
        ("tab\there", "printable"),
    ],
)
def test_an_idempotency_key_is_required_and_printable(
    account: Account, header: str | None, why: str
) -> None:
    give_credit(account)
    invoice = make_invoice(account)
    _, secret = make_token(account)
    before = state(invoice)
    body = assert_problem(pay(secret, invoice.pk, {"method": "credit"}, key=header), 400)
    assert "Idempotency-Key" in body["errors"] and why in body["detail"]
    assert state(invoice) == before


def test_a_long_printable_key_is_taken(account: Account) -> None:
    give_credit(account)
    invoice = make_invoice(account)
    _, secret = make_token(account)
    assert pay(secret, invoice.pk, {"method": "credit"}, key="k" * 255).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"method": "cash"},
        {"method": "stored_card"},
        {"method": "credit", "payment_method": 1},
        {"method": "stored_card", "payment_method": "x"},
    ],
)
def test_bad_bodies_are_a_400_naming_the_field(account: Account, body: Any) -> None:
    invoice = make_invoice(account)
    _, secret = make_token(account)
    before = state(invoice)
    problem = assert_problem(pay(secret, invoice.pk, body), 400, "invalid")
    assert problem["errors"]
    assert state(invoice) == before


@pytest.mark.parametrize("status", ["paid", "cancelled"])
def test_an_invoice_that_is_not_payable_is_a_409(account: Account, status: str) -> None:
    give_credit(account)
    invoice = make_invoice(account)
    _, secret = make_token(account)
    if status == "paid":
        assert pay(secret, invoice.pk, {"method": "credit"}, key="first-payment").status_code == 200
    else:
        services.invoice_cancel(invoice_id=invoice.pk, actor=account.owner)
    before = state(invoice)
    assert_problem(pay(secret, invoice.pk, {"method": "credit"}), 409, "not_payable")
    assert state(invoice) == before


# --- from the attacker's side ---------------------------------------------------------------


def test_another_accounts_invoice_is_a_404_and_its_card_a_400(
    account: Account, other_account: Account, charges: mock.MagicMock
) -> None:
    give_credit(account)
    give_credit(other_account)
    theirs = make_invoice(other_account)
    their_card = make_payment_method(other_account)
    mine = make_invoice(account)
    _, secret = make_token(account)
    before = (state(theirs), state(mine))
    assert_problem(pay(secret, theirs.pk, {"method": "credit"}), 404)
    assert_problem(
        pay(secret, theirs.pk, {"method": "stored_card", "payment_method": their_card.pk}), 404
    )
    for card_id in (their_card.pk, 999999, 2**63):
        problem = assert_problem(
            pay(secret, mine.pk, {"method": "stored_card", "payment_method": card_id}), 400
        )
        assert "payment_method" in problem["errors"]
    assert_problem(pay(secret, 2**63, {"method": "credit"}), 404)
    assert (state(theirs), state(mine)) == before
    assert charges.call_count == 0


def test_the_404_comes_before_the_body_and_the_key(
    account: Account, other_account: Account
) -> None:
    theirs = make_invoice(other_account)
    _, secret = make_token(account)
    assert_problem(pay(secret, theirs.pk, {"method": "cash"}, key=None), 404)


def test_a_token_without_invoices_is_a_403(account: Account) -> None:
    give_credit(account)
    invoice = make_invoice(account)
    _, secret = make_token(account, codes=("domains", "products"))
    before = state(invoice)
    assert_problem(pay(secret, invoice.pk, {"method": "credit"}), 403, "permission_missing")
    assert state(invoice) == before


def test_a_token_whose_creator_was_revoked_is_a_401(account: Account, member_factory: Any) -> None:
    give_credit(account)
    invoice = make_invoice(account)
    membership: Membership = member_factory("invoices")
    _, secret = make_token(account, membership.user)
    membership_revoke(membership=membership, actor=account.owner)
    before = state(invoice)
    assert_problem(pay(secret, invoice.pk, {"method": "credit"}), 401)
    assert state(invoice) == before


def test_a_token_whose_creator_lost_invoices_pays_nothing(
    account: Account, member_factory: Any
) -> None:
    give_credit(account)
    invoice = make_invoice(account)
    membership: Membership = member_factory("invoices", "domains")
    _, secret = make_token(account, membership.user, codes=("invoices", "domains"))
    Membership.objects.filter(pk=membership.pk).update(permissions=["domains"])
    before = state(invoice)
    assert_problem(pay(secret, invoice.pk, {"method": "credit"}), 403)
    assert state(invoice) == before


def test_a_session_never_pays(account: Account, login_client: Any) -> None:
    give_credit(account)
    invoice = make_invoice(account)
    browser = login_client(account.owner, account)
    before = state(invoice)
    assert_problem(pay(None, invoice.pk, {"method": "credit"}, client=browser), 401)
    assert state(invoice) == before


# --- stored cards: the sandbox ----------------------------------------------------------------


def test_a_stored_card_pays_once_whatever_the_retries(
    account: Account, charges: mock.MagicMock
) -> None:
    invoice = make_invoice(account)
    card = make_payment_method(account)
    _, secret = make_token(account)
    body = {"method": "stored_card", "payment_method": card.pk}
    first = pay(secret, invoice.pk, body)
    assert first.status_code == 200, first.content
    assert first.json()["status"] == "paid"
    assert first.json()["transaction"]["method"] == card.label
    for _ in range(2):
        again = pay(secret, invoice.pk, body)
        assert again.status_code == 200 and again.json() == first.json()
    assert charges.call_count == 1
    assert Transaction.objects.filter(invoice=invoice).count() == 1
    assert receipts() == 1


def test_credit_first_then_the_card_pays_the_rest(
    account: Account, charges: mock.MagicMock
) -> None:
    give_credit(account, "23.00")
    invoice = make_invoice(account)
    card = make_payment_method(account)
    _, secret = make_token(account)
    body = {"method": "stored_card", "payment_method": card.pk, "apply_credit_first": True}
    answer = pay(secret, invoice.pk, body)
    assert answer.status_code == 200 and answer.json()["status"] == "paid"
    assert charges.call_args.kwargs["amount"] == Decimal("100.00")
    assert pay(secret, invoice.pk, body).json() == answer.json()
    assert charges.call_count == 1
    assert Transaction.objects.filter(invoice=invoice, status="succeeded").count() == 2


def test_a_declined_card_is_a_402_with_the_reason_and_a_replay_says_it_again(
    account: Account, charges: mock.MagicMock
) -> None:
    invoice = make_invoice(account)
    card = make_payment_method(account, DECLINED_CARD)
    _, secret = make_token(account)
    body = {"method": "stored_card", "payment_method": card.pk}
    problem = assert_problem(pay(secret, invoice.pk, body), 402, "card_declined")
    assert "declined" in problem["detail"]
    assert assert_problem(pay(secret, invoice.pk, body), 402, "card_declined") == problem
    assert charges.call_count == 1
    invoice.refresh_from_db()
    assert invoice.status == "unpaid" and receipts() == 0


def test_a_payment_the_processor_has_not_answered_is_a_202(account: Account) -> None:
    invoice = make_invoice(account)
    card = make_payment_method(account)
    _, secret = make_token(account)
    with mock.patch.object(services.payments, "_charge", return_value=None):
        answer = pay(secret, invoice.pk, {"method": "stored_card", "payment_method": card.pk})
    assert answer.status_code == 202, answer.content
    assert answer.json()["status"] == "processing"
    # Another payment of it meanwhile: a conflict, nothing charged.
    _, other = make_token(account, name="other")
    assert_problem(
        pay(other, invoice.pk, {"method": "stored_card", "payment_method": card.pk}),
        409,
        "payment_processing",
    )
    # The same request again: still processing, never charged twice.
    again = pay(secret, invoice.pk, {"method": "stored_card", "payment_method": card.pk})
    assert again.status_code == 202
    assert Transaction.objects.filter(invoice=invoice).count() == 1


# --- stored cards: the local Stripe-compatible server -----------------------------------------


@pytest.fixture
def stripe() -> Iterator[StripeGateway]:
    with running_server() as server:
        gateway = StripeGateway(secret_key=server.secret_key, api_base=server.base_url, timeout=1.0)
        with mock.patch.dict(gateways.GATEWAYS, {gateway.code: gateway}):
            yield gateway
        assert server.invalid_requests == []


def stripe_card(account: Account, token: str) -> PaymentMethod:
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


def test_a_stripe_card_pays(account: Account, stripe: StripeGateway) -> None:
    invoice = make_invoice(account)
    card = stripe_card(account, "pm_card_visa")
    _, secret = make_token(account)
    answer = pay(secret, invoice.pk, {"method": "stored_card", "payment_method": card.pk})
    assert answer.status_code == 200, answer.content
    assert answer.json()["invoice"]["status"] == "paid"
    assert receipts() == 1


def test_a_stripe_decline_is_a_402_with_stripes_reason(
    account: Account, stripe: StripeGateway
) -> None:
    invoice = make_invoice(account)
    card = stripe_card(account, "pm_card_chargeDeclinedInsufficientFunds")
    _, secret = make_token(account)
    problem = assert_problem(
        pay(secret, invoice.pk, {"method": "stored_card", "payment_method": card.pk}),
        402,
        "card_declined",
    )
    assert "insufficient funds" in problem["detail"]


def test_a_card_that_needs_3d_secure_is_sent_to_the_invoice_page(
    account: Account, stripe: StripeGateway
) -> None:
    invoice = make_invoice(account)
    card = stripe_card(account, "pm_card_authenticationRequired")
    _, secret = make_token(account)
    body = {"method": "stored_card", "payment_method": card.pk}
    problem = assert_problem(pay(secret, invoice.pk, body), 409, "requires_customer")
    assert reverse("billing:invoice_pay", args=[invoice.pk]) in problem["detail"]
    # Nothing was charged and the attempt is over: the invoice can be paid on its page.
    invoice.refresh_from_db()
    assert invoice.status == "unpaid" and invoice.amount_paid == 0
    assert not Transaction.objects.filter(invoice=invoice, status="processing").exists()
    assert assert_problem(pay(secret, invoice.pk, body), 409, "requires_customer") == problem
