"""The card flow seen from an attacker's side, and the holes found that way, closed: each
test names the finding it guards (F1-F10) or checks what already held ("sound").

F1, a card kept by Stripe but never stored here: an owner who pays with a new card and
ticks "save this card" through 3-D Secure has the card attached to the account's Stripe
customer (setup_future_usage). It must be stored here too (so the owner can see and
remove it), once, whichever of Stripe's payment_intent.succeeded webhook (usually first),
the browser's return or the worker settles the payment; and never for a payer who may
not store cards, a payment that kept no card, or a card removed meanwhile.

Against the local Stripe server (every request our driver sends checked against Stripe's
API description), or the sandbox where no Stripe is involved. F7 (a NUL byte in a query)
was a server error on PostgreSQL only: the suite runs there too."""

from __future__ import annotations

import datetime
import html
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import AccountFactory, UserFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.billing import services
from clientarea.billing.gateways import SANDBOX, ChargeResult, ChargeStatus, SaveResult
from clientarea.billing.models import Invoice, PaymentMethod, StripeCustomer, Transaction
from clientarea.billing.stripe_gateway import StripeGateway, StripeRequestRefused, _customer_key
from clientarea.billing.totals import LineInput

from .factories import DECLINED_CARD, card, make_invoice, make_payment_method
from .stripe_helpers import SECRET, deliver
from .stripe_server import StripeServer, running_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def server() -> Iterator[StripeServer]:
    with running_server() as srv:
        yield srv
        # Every request the driver sent was one Stripe's API description allows.
        assert srv.invalid_requests == []


@pytest.fixture
def stripe(server: StripeServer, settings: SettingsWrapper) -> StripeServer:
    """Stripe takes the cards (BILLING_CARD_GATEWAY), and is the local server."""
    settings.BILLING_CARD_GATEWAY = "stripe"
    settings.STRIPE_SECRET_KEY = server.secret_key
    settings.STRIPE_PUBLISHABLE_KEY = "pk_test_card_flow_attacks"
    settings.STRIPE_API_BASE = server.base_url
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    settings.OUTSIDE_CALL_TIMEOUT_SECONDS = 1.0
    return server


@pytest.fixture
def sandbox(settings: SettingsWrapper) -> None:
    settings.BILLING_CARD_GATEWAY = "sandbox"
    settings.DEMO_MODE = True


def new_key() -> str:
    return uuid.uuid4().hex


def pay(client: Client, invoice: Invoice, **data: Any) -> Any:
    """A pay form post (a fresh form key unless one is given)."""
    body = {"idempotency_key": new_key(), **data}
    return client.post(reverse("billing:invoice_pay", args=[invoice.pk]), body)


def owner_client(login_client: Callable[..., Client], account: Account) -> Client:
    """The owner, recently authenticated (Add a Card and Remove ask for it)."""
    client = login_client(account.owner, account)
    session = client.session
    session["reauth_at"] = int(timezone.now().timestamp())
    session.save()
    return client


def shown(answer: Any) -> str:
    return html.unescape(answer.content.decode())


def status_of(invoice: Invoice) -> str:
    invoice.refresh_from_db()
    return invoice.status


def start_3d_secure(
    client: Client, server: StripeServer, invoice: Invoice, **data: Any
) -> Transaction:
    """Pay with a new card whose bank asks for 3-D Secure: the payment, processing."""
    pm = server.create_payment_method("pm_card_authenticationRequired")
    answer = pay(client, invoice, method="new_card", card_token=pm, **data)
    assert answer.status_code == 200 and "billing/to_bank.html" in [
        t.name for t in answer.templates
    ]
    tx = Transaction.objects.get(invoice=invoice)
    assert tx.status == Transaction.Status.PROCESSING
    assert tx.message == services.AWAITING_AUTHENTICATION
    return tx


def come_back(client: Client, invoice: Invoice, tx: Transaction) -> Any:
    """The bank sends the browser back to the return page."""
    return client.get(
        reverse("billing:invoice_pay_return", args=[invoice.pk]),
        {"payment_intent": tx.reference, "redirect_status": "succeeded"},
    )


def webhook_succeeded(server: StripeServer, tx: Transaction) -> Any:
    event = server.event("payment_intent.succeeded", server.intent(tx.reference))
    answer = deliver(Client(), event)
    assert answer.status_code == 200, answer.content
    return answer


def after_grace() -> datetime.datetime:
    seconds = django_settings.PENDING_CHANGE_GRACE_SECONDS + 1
    return timezone.now() + datetime.timedelta(seconds=seconds)


def give_up_time() -> datetime.datetime:
    hours = django_settings.PENDING_CHANGE_GIVE_UP_HOURS
    return timezone.now() + datetime.timedelta(hours=hours, minutes=1)


def asked(server: StripeServer, method: str, path_start: str, since: int = 0) -> int:
    """How many requests of `method` to paths starting with `path_start` Stripe got."""
    return sum(
        1 for r in server.requests[since:] if r.method == method and r.path.startswith(path_start)
    )


def cards_added() -> int:
    return AuditEvent.objects.filter(action="payment_method.added").count()


# --- F1: a card kept while paying through 3-D Secure is stored once, by any path -----------


def test_f1_the_webhook_first_stores_the_kept_card_and_the_return_adds_nothing(
    stripe: StripeServer, account: Account, login_client: Callable[..., Client]
) -> None:
    server = stripe
    invoice = make_invoice(account)
    client = owner_client(login_client, account)
    tx = start_3d_secure(client, server, invoice, save_card="on")
    server.complete_authentication(tx.reference, succeed=True)
    intent = server.intent(tx.reference)
    customer = StripeCustomer.objects.get(account=account).customer_id
    assert (intent["setup_future_usage"], intent["customer"]) == ("off_session", customer)
    at_stripe = server.state.payment_methods[intent["payment_method"]]
    assert at_stripe["customer"] == customer  # kept at Stripe, on the account's customer
    # Stripe's event reaches us before the browser comes back (the usual order).
    answer = webhook_succeeded(server, tx)
    assert status_of(invoice) == Invoice.Status.PAID
    method = PaymentMethod.objects.get(account=account)
    assert answer.json()["result"].endswith(f"card {method.token}: stored ({method.pk})")
    assert (method.gateway, method.token, method.created_by) == (
        "stripe",
        intent["payment_method"],
        account.owner,
    )
    assert (method.brand, method.last4, method.exp_month, method.exp_year) == (
        "Visa",
        at_stripe["card"]["last4"],
        at_stripe["card"]["exp_month"],
        at_stripe["card"]["exp_year"],
    )
    # The browser is back: the payment was recorded, the card is stored once.
    back = come_back(client, invoice, tx)
    assert back.status_code == 302
    assert back["Location"] == reverse("billing:invoice_detail", args=[invoice.pk])
    assert PaymentMethod.objects.filter(account=account).count() == 1
    # A second event of the same success stores nothing more either.
    webhook_succeeded(server, tx)
    assert PaymentMethod.objects.filter(account=account).count() == 1
    assert cards_added() == 1
    # The owner sees it and can remove it (detached at Stripe).
    assert method.label in shown(client.get(reverse("billing:payment_methods")))
    removed = client.post(reverse("billing:payment_method_remove", args=[method.pk]))
    assert removed.status_code == 302
    assert server.state.payment_methods[method.token]["customer"] is None
    assert not PaymentMethod.objects.exists()


def test_f1_the_return_first_stores_the_card_and_the_webhook_asks_and_adds_nothing(
    stripe: StripeServer, account: Account, login_client: Callable[..., Client]
) -> None:
    server = stripe
    invoice = make_invoice(account)
    client = owner_client(login_client, account)
    tx = start_3d_secure(client, server, invoice, save_card="on")
    server.complete_authentication(tx.reference, succeed=True)
    assert come_back(client, invoice, tx).status_code == 302
    assert status_of(invoice) == Invoice.Status.PAID
    method = PaymentMethod.objects.get(account=account)
    assert method.token == server.intent(tx.reference)["payment_method"]
    before = len(server.requests)
    answer = webhook_succeeded(server, tx)
    assert answer.json()["state"] == "processed"
    # The card is stored already: the webhook asked Stripe nothing, stored nothing more.
    assert server.requests[before:] == []
    assert list(PaymentMethod.objects.all()) == [method]
    assert cards_added() == 1


def test_f1_the_worker_settling_it_stores_the_kept_card_and_a_late_webhook_adds_nothing(
    stripe: StripeServer, account: Account, login_client: Callable[..., Client]
) -> None:
    server = stripe
    invoice = make_invoice(account)
    client = owner_client(login_client, account)
    tx = start_3d_secure(client, server, invoice, save_card="on")
    # The card holder passed 3-D Secure; the tab was closed, Stripe's event was lost.
    server.complete_authentication(tx.reference, succeed=True)
    summary = services.payments_reconcile_due(now=after_grace())
    assert summary.startswith("card payments: 1 settled")
    assert status_of(invoice) == Invoice.Status.PAID
    method = PaymentMethod.objects.get(account=account)
    assert method.token == server.intent(tx.reference)["payment_method"]
    assert method.created_by == account.owner
    webhook_succeeded(server, tx)  # delivered late after all
    assert list(PaymentMethod.objects.all()) == [method]
    assert cards_added() == 1


def test_f1_the_return_after_a_settle_that_could_not_read_the_card_stores_it(
    stripe: StripeServer, account: Account, login_client: Callable[..., Client]
) -> None:
    server = stripe
    invoice = make_invoice(account)
    client = owner_client(login_client, account)
    tx = start_3d_secure(client, server, invoice, save_card="on")
    server.complete_authentication(tx.reference, succeed=True)
    pm = server.intent(tx.reference)["payment_method"]
    # The worker settles the payment while Stripe will not show the card.
    server.fail_next(*["429"] * 20, on=f"GET /v1/payment_methods/{pm}")
    assert services.payments_reconcile_due(now=after_grace()).startswith("card payments: 1 settled")
    assert status_of(invoice) == Invoice.Status.PAID
    assert not PaymentMethod.objects.exists()
    server.failures.clear()
    # The browser comes back from the bank: the payment is recorded, the card stored now.
    back = come_back(client, invoice, tx)
    assert back.status_code == 302
    method = PaymentMethod.objects.get(account=account)
    assert method.token == pm
    assert Transaction.objects.filter(invoice=invoice, status="succeeded").count() == 1
    assert come_back(client, invoice, tx).status_code == 302  # a reload
    assert cards_added() == 1


def test_f1_a_card_removed_before_a_late_webhook_is_not_stored_again(
    stripe: StripeServer, account: Account, login_client: Callable[..., Client]
) -> None:
    server = stripe
    invoice = make_invoice(account)
    client = owner_client(login_client, account)
    tx = start_3d_secure(client, server, invoice, save_card="on")
    server.complete_authentication(tx.reference, succeed=True)
    come_back(client, invoice, tx)
    method = PaymentMethod.objects.get(account=account)
    client.post(reverse("billing:payment_method_remove", args=[method.pk]))
    assert not PaymentMethod.objects.exists()
    answer = webhook_succeeded(server, tx)
    assert answer.json()["state"] == "processed"
    assert not PaymentMethod.objects.exists()  # detached at Stripe: not kept again


@pytest.mark.parametrize("settled_by", ["webhook", "worker"])
def test_f1_a_payer_who_no_longer_manages_cards_when_it_settles_stores_none(
    settled_by: str,
    stripe: StripeServer,
    account: Account,
    login_client: Callable[..., Client],
) -> None:
    server = stripe
    invoice = make_invoice(account)
    client = owner_client(login_client, account)
    tx = start_3d_secure(client, server, invoice, save_card="on")
    server.complete_authentication(tx.reference, succeed=True)
    # The account changed hands meanwhile: the payer no longer manages its cards.
    Account.objects.filter(pk=account.pk).update(owner=UserFactory())
    if settled_by == "webhook":
        webhook_succeeded(server, tx)
    else:
        services.payments_reconcile_due(now=after_grace())
    assert status_of(invoice) == Invoice.Status.PAID
    assert not PaymentMethod.objects.exists()


@pytest.mark.parametrize("settled_by", ["webhook", "worker"])
def test_f1_a_sub_accounts_forged_save_never_stores_a_card_through_3d_secure(
    settled_by: str,
    stripe: StripeServer,
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
) -> None:
    server = stripe
    invoice = make_invoice(account)
    client = login_client(member_factory("invoices").user, account)
    tx = start_3d_secure(client, server, invoice, save_card="on")  # forged: not offered
    intent = server.intent(tx.reference)
    assert not intent.get("setup_future_usage") and intent["customer"] is None
    server.complete_authentication(tx.reference, succeed=True)
    if settled_by == "webhook":
        webhook_succeeded(server, tx)
    else:
        assert services.payments_reconcile_due(now=after_grace()).startswith(
            "card payments: 1 settled"
        )
    for _ in range(2):  # the return, and a reload
        assert come_back(client, invoice, tx).status_code == 302
    assert status_of(invoice) == Invoice.Status.PAID
    assert Transaction.objects.filter(invoice=invoice, status="succeeded").count() == 1
    assert not PaymentMethod.objects.exists()
    assert not StripeCustomer.objects.exists()
    assert all(m["customer"] is None for m in server.state.payment_methods.values())
    # A late Cancel after the success changes nothing.
    cancelled = client.post(reverse("billing:invoice_pay_cancel", args=[invoice.pk]))
    assert cancelled.status_code == 302
    assert Transaction.objects.filter(invoice=invoice, status="succeeded").count() == 1


@pytest.mark.parametrize("settled_by", ["webhook", "worker"])
def test_f1_a_payment_that_kept_no_card_stores_none_and_asks_stripe_for_none(
    settled_by: str,
    stripe: StripeServer,
    account: Account,
    login_client: Callable[..., Client],
) -> None:
    server = stripe
    # The account has a Stripe customer already (a card saved earlier, then removed).
    client = owner_client(login_client, account)
    saved = server.create_payment_method("pm_card_mastercard")
    assert (
        client.post(reverse("billing:payment_method_add"), {"card_token": saved}).status_code == 302
    )
    remove = reverse("billing:payment_method_remove", args=[PaymentMethod.objects.get().pk])
    assert client.post(remove).status_code == 302
    invoice = make_invoice(account)
    tx = start_3d_secure(client, server, invoice)  # the owner did not tick "save"
    assert not server.intent(tx.reference).get("setup_future_usage")
    server.complete_authentication(tx.reference, succeed=True)
    before = len(server.requests)
    if settled_by == "webhook":
        webhook_succeeded(server, tx)
    else:
        services.payments_reconcile_due(now=after_grace())
    come_back(client, invoice, tx)
    assert status_of(invoice) == Invoice.Status.PAID
    assert not PaymentMethod.objects.exists()
    # No card was asked about: nothing to keep.
    assert asked(server, "GET", "/v1/payment_methods", since=before) == 0


# --- F2: a stored sandbox card pays nothing once the sandbox takes no cards ----------------


@pytest.mark.parametrize("configured", ["", "stripe"])
def test_f2_a_stored_sandbox_card_no_longer_pays_outside_the_sandbox(
    configured: str,
    stripe: StripeServer,
    account: Account,
    login_client: Callable[..., Client],
    settings: SettingsWrapper,
) -> None:
    # e.g. the demonstration's stored sandbox card, left in the database
    method = PaymentMethod.objects.create(
        account=account,
        gateway="sandbox",
        token=card(),
        brand="Visa",
        last4="4242",
        exp_month=12,
        exp_year=timezone.localdate().year + 2,
    )
    settings.BILLING_CARD_GATEWAY = configured
    settings.DEMO_MODE = False
    invoice = make_invoice(account)
    client = login_client(account.owner, account)
    answer = pay(client, invoice, method=f"card-{method.pk}")
    assert answer.status_code == 200
    assert "was a test card and can no longer be used" in shown(answer)
    assert status_of(invoice) == Invoice.Status.UNPAID
    assert not Transaction.objects.filter(invoice=invoice).exists()
    assert asked(stripe, "POST", "/v1/payment_intents") == 0


# --- F3: apply-credit-first with a form key used on another invoice ------------------------


def test_f3_a_credit_first_form_key_used_on_another_invoice_is_refused_clearly(
    sandbox: None, account: Account, login_client: Callable[..., Client]
) -> None:
    staff = account.owner
    services.credit_add(account_id=account.pk, amount=Decimal("10.00"), reason="r", actor=staff)
    first, second = make_invoice(account), make_invoice(account)
    client = login_client(account.owner, account)
    key = new_key()
    ok = pay(client, first, method="bank_transfer", apply_credit="on", idempotency_key=key)
    assert ok.status_code == 302
    services.credit_add(account_id=account.pk, amount=Decimal("10.00"), reason="r", actor=staff)
    again = pay(client, second, method="bank_transfer", apply_credit="on", idempotency_key=key)
    assert again.status_code == 200
    assert "This payment form was already used" in shown(again)
    assert not Transaction.objects.filter(invoice=second).exists()
    account.refresh_from_db()
    assert account.credit_balance == Decimal("10.00")
    second.refresh_from_db()
    assert second.amount_paid == Decimal("0.00")


# --- F4: a bank page the processor gives no usable address for ---------------------------


def test_f4_a_card_save_with_no_bank_page_says_it_is_being_confirmed(
    sandbox: None,
    account: Account,
    login_client: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What Stripe's driver answers for a SetupIntent left processing, or waiting for an
    # action that is no redirect.
    monkeypatch.setattr(
        SANDBOX, "card_save", lambda **kw: SaveResult(None, reference="seti_123", redirect_url="")
    )
    client = owner_client(login_client, account)
    answer = client.post(reverse("billing:payment_method_add"), {"card_token": card()})
    assert answer.status_code == 302
    assert answer["Location"] == reverse("billing:payment_methods")
    page = shown(client.get(answer["Location"]))
    assert "Your bank is still confirming the card" in page
    assert not PaymentMethod.objects.exists()


@pytest.mark.parametrize("bank_url", ["javascript:alert(1)", "data:text/html,<p>your bank</p>"])
def test_f4_a_payment_whose_bank_page_is_unusable_offers_cancel(
    bank_url: str,
    sandbox: None,
    account: Account,
    login_client: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        SANDBOX,
        "charge",
        lambda **kw: ChargeResult(ChargeStatus.REQUIRES_ACTION, "pi_x", redirect_url=bank_url),
    )
    invoice = make_invoice(account)
    client = login_client(account.owner, account)
    answer = pay(client, invoice, method="new_card", card_token=card())
    assert answer.status_code == 302
    assert answer["Location"] == reverse("billing:invoice_pay", args=[invoice.pk])
    assert bank_url not in shown(answer)
    page = client.get(answer["Location"])
    assert "confirmation page could not be opened" in shown(page)
    assert page.context["awaiting_authentication"]  # Cancel offered
    assert "Cancel this payment" in shown(page)
    tx = Transaction.objects.get(invoice=invoice)
    assert (tx.status, tx.message) == (
        Transaction.Status.PROCESSING,
        services.AWAITING_AUTHENTICATION,
    )


# --- F5: a pay form's key cannot poison another account's Stripe requests ------------------


def test_f5_a_form_key_equal_to_another_accounts_customer_key_poisons_nothing(
    stripe: StripeServer,
    account: Account,
    other_account: Account,
    login_client: Callable[..., Client],
) -> None:
    server = stripe
    victim = account
    # Computable from the victim's account id, owner email and display name.
    poisoned = _customer_key(victim.pk, victim.owner.email, victim.display_name)
    assert services.IDEMPOTENCY_KEY_RE.match(poisoned)
    attacker = login_client(other_account.owner, other_account)
    own_invoice = make_invoice(other_account)
    pm = server.create_payment_method("pm_card_visa")
    paid = pay(attacker, own_invoice, method="new_card", card_token=pm, idempotency_key=poisoned)
    assert paid.status_code == 302
    assert status_of(own_invoice) == Invoice.Status.PAID
    (made,) = [r for r in server.requests if (r.method, r.path) == ("POST", "/v1/payment_intents")]
    assert made.headers["idempotency-key"] == f"pay-{poisoned}"
    # The victim's owner saves a card: their customer is made, the card kept.
    client = owner_client(login_client, victim)
    victim_pm = server.create_payment_method("pm_card_visa")
    answer = client.post(reverse("billing:payment_method_add"), {"card_token": victim_pm})
    assert answer.status_code == 302
    customer = StripeCustomer.objects.get(account=victim).customer_id
    assert customer.startswith("cus_")
    assert server.state.payment_methods[victim_pm]["customer"] == customer
    assert PaymentMethod.objects.get(account=victim).token == victim_pm


# --- F6: a card-save return is taken only in the account that started it -----------------


def test_f6_a_card_save_return_in_another_account_stores_nothing_there(
    stripe: StripeServer, account: Account, login_client: Callable[..., Client]
) -> None:
    server = stripe
    second: Account = AccountFactory(owner=account.owner, company_name="Second Co")
    client = owner_client(login_client, account)
    pm = server.create_payment_method("pm_card_authenticationRequiredOnSetup")
    answer = client.post(reverse("billing:payment_method_add"), {"card_token": pm})
    assert answer.status_code == 200 and "billing/to_bank.html" in [
        t.name for t in answer.templates
    ]
    (seti,) = server.state.setup_intents
    server.complete_authentication(seti, succeed=True)
    # Switch Account in another tab, then the bank sends the browser back.
    session = client.session
    session["current_account_id"] = second.pk
    session.save()
    back = client.get(reverse("billing:payment_method_return"), {"setup_intent": seti})
    assert back.status_code == 302
    assert "The card was not saved" in shown(client.get(back["Location"]))
    assert not PaymentMethod.objects.filter(account=second).exists()
    # Stripe's setup_intent.succeeded stores it where it belongs: the first account.
    event = server.event("setup_intent.succeeded", dict(server.state.setup_intents[seti]))
    assert deliver(Client(), event).status_code == 200
    assert PaymentMethod.objects.get(token=pm).account_id == account.pk
    customer = StripeCustomer.objects.get(account=account).customer_id
    assert server.state.payment_methods[pm]["customer"] == customer


# --- F7 and sound: odd return queries are refused, never a server error ------------------


@pytest.mark.parametrize(
    "query",
    [
        {"payment_intent": "pi_\x00x"},  # F7: a 500 on PostgreSQL
        {"payment_intent": "x" * 100_000},
        {"payment_intent": "pi_' OR 1=1 --"},
        {"payment_intent": ["a", "b"]},
        {},
    ],
    ids=["nul", "long", "quote", "twice", "none"],
)
def test_f7_odd_return_queries_are_refused_never_a_server_error(
    sandbox: None, account: Account, login_client: Callable[..., Client], query: dict[str, Any]
) -> None:
    invoice = make_invoice(account)
    client = owner_client(login_client, account)
    client.raise_request_exception = False
    answer = client.get(reverse("billing:invoice_pay_return", args=[invoice.pk]), query)
    assert answer.status_code == 302
    assert answer["Location"] == reverse("billing:invoice_detail", args=[invoice.pk])
    answer = client.get(reverse("billing:payment_method_return"), query)
    assert answer.status_code == 302
    assert status_of(invoice) == Invoice.Status.UNPAID


def test_f7_a_reference_that_is_none_is_refused_before_any_query(
    account: Account, django_assert_num_queries: Any
) -> None:
    invoice = make_invoice(account)
    access = access_of(account.owner, account)
    with django_assert_num_queries(0), pytest.raises(services.BillingError):
        services.card_payment_return(invoice_id=invoice.pk, access=access, reference="pi_\x00x")


# --- F8: an amount no card can pay (cents of a zero-decimal currency) --------------------


def test_f8_cents_of_yen_get_no_card_form_and_no_charge(
    stripe: StripeServer, account: Account, login_client: Callable[..., Client]
) -> None:
    server = stripe
    Account.objects.filter(pk=account.pk).update(currency="JPY")
    account.refresh_from_db()
    invoice = make_invoice(
        account, lines=[LineInput("Hosting", Decimal("1"), Decimal("99"), Decimal("23"))]
    )
    assert invoice.total == Decimal("121.77")
    client = login_client(account.owner, account)
    client.raise_request_exception = False
    page = client.get(reverse("billing:invoice_pay", args=[invoice.pk]))
    assert page.status_code == 200
    assert "new_card" not in dict(page.context["form"].fields["method"].choices)
    pm = server.create_payment_method("pm_card_visa")
    answer = pay(client, invoice, method="new_card", card_token=pm)
    assert answer.status_code == 200
    assert not Transaction.objects.filter(invoice=invoice).exists()
    # Had the choice been sent anyway, the payment is refused before Stripe is asked.
    outcome = services.invoice_pay(
        invoice_id=invoice.pk,
        access=access_of(account.owner, account),
        source=services.PayWithNewCard(token=pm),
        idempotency_key=new_key(),
        return_url="https://client.example/return",
    )
    assert outcome.status == "failed"
    assert "Cards cannot pay this amount" in outcome.message
    assert asked(server, "POST", "/v1/payment_intents") == 0
    assert status_of(invoice) == Invoice.Status.UNPAID


def test_f8_the_gateway_refuses_an_amount_stripe_cannot_take_before_sending(
    stripe: StripeServer,
) -> None:
    gateway = StripeGateway(secret_key=stripe.secret_key, api_base=stripe.base_url, timeout=1.0)
    pm = stripe.create_payment_method("pm_card_visa")
    with pytest.raises(StripeRequestRefused) as refused:
        gateway.charge(
            amount=Decimal("121.77"),
            currency="JPY",
            token=pm,
            idempotency_key=new_key(),
            description="INV-1",
            return_url="https://client.example/return",
        )
    assert refused.value.code == "amount_not_payable"
    assert stripe.requests == []


# --- F9, F10: a payment left at 3-D Secure stays cancellable, and is cancelled at Stripe ---


def test_f10_opening_the_return_page_early_keeps_cancel(
    stripe: StripeServer,
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
) -> None:
    server = stripe
    invoice = make_invoice(account)
    owner = login_client(account.owner, account)
    tx = start_3d_secure(owner, server, invoice)
    # Anyone with Invoices sees the reference, and opens the return page before the
    # card holder is done at the bank.
    other = login_client(member_factory("invoices").user, account)
    early = come_back(other, invoice, tx)
    assert early.status_code in (200, 302)
    tx.refresh_from_db()
    assert (tx.status, tx.message) == (
        Transaction.Status.PROCESSING,
        services.AWAITING_AUTHENTICATION,
    )
    page = owner.get(reverse("billing:invoice_pay", args=[invoice.pk]))
    assert "Cancel this payment" in shown(page)
    answer = owner.post(reverse("billing:invoice_pay_cancel", args=[invoice.pk]), follow=True)
    assert "cannot be cancelled" not in shown(answer)
    assert server.intent(tx.reference)["status"] == "canceled"
    tx.refresh_from_db()
    assert tx.status == Transaction.Status.FAILED
    assert pay(owner, invoice, method="new_card", card_token=card_visa(server)).status_code == 302
    assert status_of(invoice) == Invoice.Status.PAID


def card_visa(server: StripeServer) -> str:
    return server.create_payment_method("pm_card_visa")


def test_f9_the_workers_give_up_cancels_at_stripe_even_after_an_early_return(
    stripe: StripeServer, account: Account, login_client: Callable[..., Client]
) -> None:
    server = stripe
    invoice = make_invoice(account)
    owner = login_client(account.owner, account)
    tx = start_3d_secure(owner, server, invoice)
    come_back(owner, invoice, tx)  # back before the bank was done
    summary = services.payments_reconcile_due(now=give_up_time())
    assert "1 failed" in summary
    intent = server.intent(tx.reference)
    assert (intent["status"], intent["cancellation_reason"]) == ("canceled", "abandoned")
    tx.refresh_from_db()
    assert tx.status == Transaction.Status.FAILED
    assert status_of(invoice) == Invoice.Status.UNPAID


# --- sound: what already held against an attacker ------------------------------------------


def test_sound_a_sub_account_cannot_finish_a_card_save_even_with_a_planted_session(
    sandbox: None,
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
) -> None:
    method = make_payment_method(account)
    for codes in (("invoices",), ()):
        member = member_factory(*codes)
        client = login_client(member.user, account)
        session = client.session
        session["reauth_at"] = int(timezone.now().timestamp())
        session["billing_card_save"] = [account.pk, "seti_x"]
        session.save()
        back = client.get(reverse("billing:payment_method_return"), {"setup_intent": "seti_x"})
        assert back.status_code == 403
        add = client.post(reverse("billing:payment_method_add"), {"card_token": card()})
        assert add.status_code == 403
        remove = client.post(reverse("billing:payment_method_remove", args=[method.pk]))
        assert remove.status_code == 403
        token = client.post(
            reverse("billing:sandbox_tokenize"),
            {"card": "visa", "exp_month": 12, "exp_year": timezone.localdate().year + 2},
        )
        assert token.status_code == (200 if codes else 403)
    assert list(PaymentMethod.objects.all()) == [method]


def test_sound_a_revoked_session_reaches_nothing(
    stripe: StripeServer,
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
) -> None:
    from clientarea.accounts.services import membership_revoke

    server = stripe
    member = member_factory("invoices")
    invoice = make_invoice(account)
    client = login_client(member.user, account)
    tx = start_3d_secure(client, server, invoice)
    membership_revoke(membership=member, actor=account.owner)
    server.complete_authentication(tx.reference, succeed=True)
    for answer in (
        come_back(client, invoice, tx),
        client.post(reverse("billing:invoice_pay_cancel", args=[invoice.pk])),
        client.post(reverse("billing:sandbox_tokenize"), {"card": "visa"}),
        pay(client, invoice, method="new_card", card_token=card_visa(server)),
    ):
        assert answer.status_code == 302
        assert answer["Location"].startswith("/accounts/"), answer["Location"]
    tx.refresh_from_db()
    assert tx.status == Transaction.Status.PROCESSING  # settled later by webhook or worker
    assert asked(server, "POST", "/v1/payment_intents") == 1


@pytest.mark.parametrize(
    "token",
    [
        "tok_sandbox_",
        "tok_sandbox_visa.12.2040.ab:forged",
        "x" * 5000,
        "pm_\u2028",
        "tok_sandbox_a:b:c",
    ],
)
def test_sound_malformed_tokens_are_refused_never_a_server_error(
    sandbox: None, account: Account, login_client: Callable[..., Client], token: str
) -> None:
    invoice = make_invoice(account)
    client = owner_client(login_client, account)
    client.raise_request_exception = False
    assert pay(client, invoice, method="new_card", card_token=token).status_code == 200
    answer = client.post(reverse("billing:payment_method_add"), {"card_token": token})
    assert answer.status_code == 200
    assert not Transaction.objects.filter(invoice=invoice).exists()
    assert not PaymentMethod.objects.exists()


def test_sound_another_accounts_stripe_card_cannot_be_charged_or_saved(
    stripe: StripeServer,
    account: Account,
    other_account: Account,
    login_client: Callable[..., Client],
) -> None:
    server = stripe
    victim = owner_client(login_client, other_account)
    victim_pm = server.create_payment_method("pm_card_visa")
    assert (
        victim.post(reverse("billing:payment_method_add"), {"card_token": victim_pm}).status_code
        == 302
    )
    assert PaymentMethod.objects.get(account=other_account).token == victim_pm
    invoice = make_invoice(account)
    attacker = owner_client(login_client, account)
    pay(attacker, invoice, method="new_card", card_token=victim_pm)
    pay(attacker, invoice, method="new_card", card_token=victim_pm, save_card="on")
    attacker.post(reverse("billing:payment_method_add"), {"card_token": victim_pm})
    assert status_of(invoice) == Invoice.Status.UNPAID
    assert not PaymentMethod.objects.filter(account=account).exists()
    assert not Transaction.objects.filter(invoice=invoice, status="succeeded").exists()
    victim_customer = StripeCustomer.objects.get(account=other_account).customer_id
    assert server.state.payment_methods[victim_pm]["customer"] == victim_customer
    assert not any(c["status"] == "succeeded" for c in server.state.charges.values())


def test_sound_credit_first_then_a_card_replayed_applies_and_charges_once(
    sandbox: None, account: Account, login_client: Callable[..., Client]
) -> None:
    services.credit_add(
        account_id=account.pk, amount=Decimal("10.00"), reason="r", actor=account.owner
    )
    invoice = make_invoice(account)
    client = login_client(account.owner, account)
    body = {
        "method": "new_card",
        "card_token": card(DECLINED_CARD),
        "apply_credit": "on",
        "idempotency_key": new_key(),
    }
    for _ in range(3):
        pay(client, invoice, **body)
    account.refresh_from_db()
    invoice.refresh_from_db()
    assert account.credit_balance == Decimal("0.00")
    assert invoice.amount_paid == Decimal("10.00")
    assert Transaction.objects.filter(invoice=invoice).count() == 2  # credit, declined card
    body = {"method": "new_card", "card_token": card(), "idempotency_key": new_key()}
    for _ in range(3):
        pay(client, invoice, **body)
    assert status_of(invoice) == Invoice.Status.PAID
    assert Transaction.objects.filter(invoice=invoice, status="succeeded").count() == 2
