"""The pay and Add a Card pages with Stripe taking the cards, through the Django test
client with CSRF checks on, against the local Stripe server.

The browser's part is played here: Stripe.js's ``createPaymentMethod`` is the local
server's ``create_payment_method`` (the page posts the PaymentMethod id it gives), the
card holder at their bank is an HTTP request to the server's 3-D Secure page, whose
redirect the test client then follows back to our return page. Stripe's webhooks are
signed deliveries to our endpoint. Every request our driver sent is checked against
Stripe's published API description (the server fixture's last assertion)."""

from __future__ import annotations

import datetime
import html
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.conf import settings as django_settings
from django.db import connection, connections
from django.db.models import F
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from clientarea.accounts.middleware import ACCOUNT_PIN_FIELD
from clientarea.accounts.models import Account, Membership, User
from clientarea.billing import gateways, services
from clientarea.billing.card_entry import STRIPE_JS_URL
from clientarea.billing.models import (
    Invoice,
    PaymentMethod,
    StripeCustomer,
    StripeEvent,
    Transaction,
)
from clientarea.billing.stripe_gateway import StripeGateway
from clientarea.billing.totals import LineInput
from clientarea.notifications.models import OutboxEmail
from clientarea.security.headers import DEFAULT_CSP

from .factories import make_invoice
from .stripe_server import StripeServer, running_server

pytestmark = pytest.mark.django_db
SECRET = "whsec_test_pay_pages_0123456789ab"
PUBLISHABLE_KEY = "pk_test_pay_pages_0123456789"
STRIPE_SCRIPT = ("https://js.stripe.com", "https://*.js.stripe.com")
STRIPE_FRAMES = (*STRIPE_SCRIPT, "https://hooks.stripe.com")
STRIPE_API = ("https://api.stripe.com",)


@pytest.fixture
def server() -> Iterator[StripeServer]:
    with running_server() as srv:
        yield srv
        # Every request the driver sent was one Stripe's API description allows.
        assert srv.invalid_requests == []


def _settings_for(settings: SettingsWrapper, server: StripeServer) -> None:
    settings.BILLING_CARD_GATEWAY = "stripe"
    settings.STRIPE_PUBLISHABLE_KEY = PUBLISHABLE_KEY
    settings.STRIPE_SECRET_KEY = server.secret_key
    settings.STRIPE_API_BASE = server.base_url
    settings.STRIPE_WEBHOOK_SECRET = SECRET


@pytest.fixture
def stripe(server: StripeServer, settings: SettingsWrapper) -> Iterator[StripeGateway]:
    """Stripe takes the cards (BILLING_CARD_GATEWAY), and is the local server."""
    _settings_for(settings, server)
    gateway = StripeGateway(secret_key=server.secret_key, api_base=server.base_url, timeout=1.0)
    with mock.patch.dict(gateways.GATEWAYS, {gateway.code: gateway}):
        yield gateway


@dataclass
class Browser:
    """One person's browser on the client area (CSRF checks on), and Stripe.js in it."""

    client: Client
    user: User
    account: Account
    server: StripeServer

    def get(self, url: str, query: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.client.get(url, query, **kwargs)

    def post(self, url: str, data: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """A form post, with the CSRF token and account pin every page's form carries."""
        form = {
            "csrfmiddlewaretoken": self.client.cookies["csrftoken"].value,
            ACCOUNT_PIN_FIELD: str(self.account.pk),
            **(data or {}),
        }
        return self.client.post(url, form, **kwargs)

    def open_pay_page(self, invoice: Invoice) -> str:
        """Open the invoice's pay page: its form's idempotency key."""
        page = self.get(pay_url(invoice))
        assert page.status_code == 200
        assert page.context["form"] is not None
        key: str = page.context["form"]["idempotency_key"].value()
        return key

    def pay_new_card(
        self, invoice: Invoice, card: str = "pm_card_visa", *, save: bool = False, **kwargs: Any
    ) -> Any:
        """Open the pay page, type test card `card` into the Payment Element (Stripe.js
        makes a PaymentMethod of it) and submit: the answer to the form post."""
        key = self.open_pay_page(invoice)
        data = {
            "method": "new_card",
            "card_token": self.server.create_payment_method(card),
            "idempotency_key": key,
        }
        if save:
            data["save_card"] = "on"
        return self.post(pay_url(invoice), data, **kwargs)

    def pay_stored_card(self, invoice: Invoice, method: PaymentMethod, **kwargs: Any) -> Any:
        key = self.open_pay_page(invoice)
        data = {"method": f"card-{method.pk}", "idempotency_key": key}
        return self.post(pay_url(invoice), data, **kwargs)


@pytest.fixture
def browser_of(
    login_client: Callable[..., Client], server: StripeServer
) -> Callable[[User, Account], Browser]:
    def make(user: User, account: Account) -> Browser:
        client = login_client(user, account, csrf=True)
        client.get(reverse("billing:invoice_list"))  # any page sets the CSRF cookie
        return Browser(client, user, account, server)

    return make


@pytest.fixture
def by_owner(account: Account, browser_of: Callable[[User, Account], Browser]) -> Browser:
    return browser_of(account.owner, account)


@pytest.fixture
def by_accountant(
    account: Account,
    member_factory: Callable[..., Membership],
    browser_of: Callable[[User, Account], Browser],
) -> Browser:
    """A sub-account with View & Pay Invoices only."""
    return browser_of(member_factory("invoices").user, account)


def pay_url(invoice: Invoice) -> str:
    return reverse("billing:invoice_pay", args=[invoice.pk])


def detail_url(invoice: Invoice) -> str:
    return reverse("billing:invoice_detail", args=[invoice.pk])


def at_the_bank(bank_url: str, *, succeed: bool) -> str:
    """The card holder on their bank's 3-D Secure page (the local server's): passes or
    fails it; returns where the bank sends the browser back to (our return page)."""
    assert httpx.get(bank_url).status_code == 200
    answer = httpx.post(bank_url, data={"result": "succeed" if succeed else "fail"})
    assert answer.status_code == 303
    location: str = answer.headers["Location"]
    return location


def path_of(url: str) -> str:
    """A URL as the test client takes it: its path and query (the host is ours)."""
    parts = urlsplit(url)
    assert parts.netloc == "testserver", url
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def bank_url_of(answer: Any) -> str:
    """The bank's page the pay page's answer sends the browser to (3-D Secure)."""
    assert answer.status_code == 200
    assert "billing/to_bank.html" in [t.name for t in answer.templates]
    url: str = answer.context["bank_url"]
    assert f'href="{url}"' in answer.content.decode()
    return url


def receipts(to: User | None = None) -> int:
    """Payment receipts in the outbox, to `to` (by default the account's owner, who is
    sent one for every payment; a sub-account who paid is copied)."""
    emails = OutboxEmail.objects.filter(subject__startswith="Payment receipt")
    if to is None:
        return emails.filter(to_email=F("account__owner__email")).count()
    return emails.filter(to_email=to.email).count()


def payments(invoice: Invoice) -> list[tuple[str, str]]:
    """The invoice's payment rows: (status, reference)."""
    return list(
        Transaction.objects.filter(invoice=invoice, kind=Transaction.Kind.PAYMENT)
        .order_by("pk")
        .values_list("status", "reference")
    )


def status_of(invoice: Invoice) -> str:
    invoice.refresh_from_db()
    return invoice.status


def shown(answer: Any) -> str:
    """The page the browser ends on (redirects followed), as text."""
    return html.unescape(answer.content.decode())


def intents_made(server: StripeServer) -> list[dict[str, Any]]:
    return [
        r.params for r in server.requests if (r.method, r.path) == ("POST", "/v1/payment_intents")
    ]


def succeeded_charges(server: StripeServer) -> int:
    return sum(1 for c in server.state.charges.values() if c["status"] == "succeeded")


# --- 1. a new card paid at once; saving it; a stored card --------------------------------


@pytest.mark.parametrize("who", ["by_owner", "by_accountant"])
def test_a_new_card_pays_at_once(
    who: str, request: pytest.FixtureRequest, account: Account, stripe: StripeGateway
) -> None:
    browser: Browser = request.getfixturevalue(who)
    server = browser.server
    invoice = make_invoice(account)
    # CSRF checks are on: the same post without the form's token is refused.
    forged = {"method": "new_card", "card_token": server.create_payment_method("pm_card_visa")}
    assert browser.client.post(pay_url(invoice), forged).status_code == 403
    answer = browser.pay_new_card(invoice, "pm_card_visa", follow=True)
    assert answer.redirect_chain == [(detail_url(invoice), 302)]
    assert f"invoice #{invoice.number} is paid" in shown(answer)
    assert status_of(invoice) == Invoice.Status.PAID
    ((status, reference),) = payments(invoice)
    assert status == Transaction.Status.SUCCEEDED
    intent = server.intent(reference)
    assert (intent["status"], intent["amount"], intent["currency"]) == ("succeeded", 12300, "eur")
    # Charged on session (a return URL for 3-D Secure), not kept: no customer.
    (made,) = intents_made(server)
    assert made["confirm"] == "true"
    assert (
        made["return_url"]
        == f"http://testserver{reverse('billing:invoice_pay_return', args=[invoice.pk])}"
    )
    assert "customer" not in made and "setup_future_usage" not in made
    assert "off_session" not in made
    assert succeeded_charges(server) == 1
    assert receipts() == 1
    assert receipts(to=browser.user) == 1
    assert not PaymentMethod.objects.exists()


def test_the_owners_saved_card_keeps_brand_last_four_and_expiry_only(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    assert by_owner.pay_new_card(invoice, "pm_card_mastercard", save=True).status_code == 302
    assert status_of(invoice) == Invoice.Status.PAID
    (made,) = intents_made(server)
    customer = StripeCustomer.objects.get(account=account).customer_id
    assert (made["customer"], made["setup_future_usage"]) == (customer, "off_session")
    (kept,) = PaymentMethod.objects.filter(account=account).values()
    at_stripe = server.state.payment_methods[kept["token"]]
    assert at_stripe["customer"] == customer  # kept at Stripe, on the account's customer
    assert {k: v for k, v in kept.items() if k not in ("id", "created_at")} == {
        "account_id": account.pk,
        "gateway": "stripe",
        "token": kept["token"],
        "brand": "Mastercard",
        "last4": "4444",
        "exp_month": at_stripe["card"]["exp_month"],
        "exp_year": at_stripe["card"]["exp_year"],
        "created_by_id": account.owner.pk,
    }
    assert kept["token"].startswith("pm_")
    # The Payment Methods page shows what may be shown: brand and last four.
    listing = shown(by_owner.get(reverse("billing:payment_methods")))
    assert "Mastercard ending in 4444" in listing


def test_a_sub_accounts_forged_save_keeps_nothing(
    account: Account, by_accountant: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    page = by_accountant.get(pay_url(invoice))
    assert "save_card" not in page.context["form"].fields  # not offered
    answer = by_accountant.pay_new_card(invoice, "pm_card_visa", save=True)  # forged
    assert answer.status_code == 302
    assert status_of(invoice) == Invoice.Status.PAID
    (made,) = intents_made(server)
    assert "setup_future_usage" not in made and "customer" not in made
    assert not PaymentMethod.objects.exists()
    assert all(m["customer"] is None for m in server.state.payment_methods.values())


def test_a_stored_stripe_card_pays_on_session(
    account: Account,
    by_owner: Browser,
    by_accountant: Browser,
    stripe: StripeGateway,
    server: StripeServer,
) -> None:
    added = by_owner.post(
        reverse("billing:payment_method_add"),
        {"card_token": server.create_payment_method("pm_card_visa")},
    )
    assert added.status_code == 302
    method = PaymentMethod.objects.get(account=account)
    customer = StripeCustomer.objects.get(account=account).customer_id
    for browser in (by_owner, by_accountant):
        invoice = make_invoice(account)
        answer = browser.pay_stored_card(invoice, method, follow=True)
        assert f"invoice #{invoice.number} is paid" in shown(answer)
        assert status_of(invoice) == Invoice.Status.PAID
        made = intents_made(server)[-1]
        assert (made["payment_method"], made["customer"]) == (method.token, customer)
        assert made["return_url"].endswith(reverse("billing:invoice_pay_return", args=[invoice.pk]))
        assert "off_session" not in made
    assert succeeded_charges(server) == 2
    assert receipts() == 2


def test_a_zero_decimal_currency_is_charged_in_whole_units(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    account.currency = "JPY"
    account.save(update_fields=["currency"])
    invoice = make_invoice(
        account,
        lines=[LineInput("Business Hosting (yearly)", Decimal("1"), Decimal("5000"), Decimal("0"))],
    )
    assert (invoice.currency, invoice.total) == ("JPY", Decimal("5000.00"))
    page = by_owner.get(pay_url(invoice))
    config = card_entry_config(page)
    assert (config["amount"], config["currency"]) == (5000, "jpy")
    assert by_owner.pay_new_card(invoice, "pm_card_visa").status_code == 302
    (intent,) = server.state.payment_intents.values()
    assert (intent["amount"], intent["currency"], intent["status"]) == (5000, "jpy", "succeeded")
    assert status_of(invoice) == Invoice.Status.PAID


# --- 2. 3-D Secure: to the bank and back ---------------------------------------------------


def start_3d_secure(browser: Browser, invoice: Invoice, **kwargs: Any) -> tuple[str, str]:
    """Pay with a card whose bank asks for 3-D Secure: (the bank's page, the intent)."""
    answer = browser.pay_new_card(invoice, "pm_card_authenticationRequired", **kwargs)
    bank_url = bank_url_of(answer)
    ((status, intent_id),) = payments(invoice)
    assert status == Transaction.Status.PROCESSING
    assert bank_url == f"{browser.server.base_url}/3ds/{intent_id}"
    return bank_url, intent_id


@pytest.mark.parametrize("who", ["by_owner", "by_accountant"])
def test_3d_secure_completed_ends_paid_with_one_payment_and_one_receipt(
    who: str,
    request: pytest.FixtureRequest,
    account: Account,
    stripe: StripeGateway,
    server: StripeServer,
) -> None:
    payer: Browser = request.getfixturevalue(who)
    invoice = make_invoice(account)
    bank_url, intent_id = start_3d_secure(payer, invoice)
    assert server.intent(intent_id)["status"] == "requires_action"
    assert status_of(invoice) == Invoice.Status.UNPAID
    assert receipts() == 0
    back = at_the_bank(bank_url, succeed=True)
    return_path = reverse("billing:invoice_pay_return", args=[invoice.pk])
    assert path_of(back).startswith(f"{return_path}?")
    assert parse_qs(urlsplit(back).query)["payment_intent"] == [intent_id]
    answer = payer.get(path_of(back), follow=True)
    assert answer.redirect_chain == [(detail_url(invoice), 302)]
    assert f"invoice #{invoice.number} is paid" in shown(answer)
    assert status_of(invoice) == Invoice.Status.PAID
    assert invoice.amount_paid == invoice.total
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    assert succeeded_charges(server) == 1
    assert receipts() == 1
    # Back again (a reload of the return page): nothing more is recorded.
    again = payer.get(path_of(back), follow=True)
    assert again.redirect_chain == [(detail_url(invoice), 302)]
    assert "already recorded" in shown(again)
    invoice.refresh_from_db()
    assert invoice.amount_paid == invoice.total
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    assert receipts() == 1


def test_3d_secure_completed_keeps_the_owners_card_once_back(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    bank_url, intent_id = start_3d_secure(by_owner, invoice, save=True)
    assert not PaymentMethod.objects.exists()  # nothing kept before the bank said yes
    by_owner.get(path_of(at_the_bank(bank_url, succeed=True)))
    assert status_of(invoice) == Invoice.Status.PAID
    method = PaymentMethod.objects.get(account=account)
    assert (method.brand, method.last4) == ("Visa", "3184")
    assert method.token == server.intent(intent_id)["payment_method"]
    customer = StripeCustomer.objects.get(account=account).customer_id
    assert server.state.payment_methods[method.token]["customer"] == customer


def test_3d_secure_failed_ends_unpaid_with_a_clear_failure_and_a_fresh_form(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    first_key = by_owner.open_pay_page(invoice)
    bank_url, intent_id = start_3d_secure(by_owner, invoice)
    back = at_the_bank(bank_url, succeed=False)
    assert parse_qs(urlsplit(back).query)["redirect_status"] == ["failed"]
    answer = by_owner.get(path_of(back), follow=True)
    assert answer.redirect_chain == [(pay_url(invoice), 302)]
    page = shown(answer)
    assert "you were not charged" in page and "failed authentication" in page
    assert status_of(invoice) == Invoice.Status.UNPAID
    assert payments(invoice) == [(Transaction.Status.FAILED, intent_id)]
    assert succeeded_charges(server) == 0
    assert receipts() == 0
    # A fresh form, with a new key, to pay again.
    form = answer.context["form"]
    assert form is not None and answer.context["processing"] is None
    assert form["idempotency_key"].value() != first_key
    assert by_owner.pay_new_card(invoice, "pm_card_visa").status_code == 302
    assert status_of(invoice) == Invoice.Status.PAID
    assert receipts() == 1


def test_a_return_naming_another_invoices_or_accounts_intent_changes_nothing(
    account: Account,
    other_account: Account,
    by_owner: Browser,
    browser_of: Callable[[User, Account], Browser],
    stripe: StripeGateway,
    server: StripeServer,
) -> None:
    ours = make_invoice(account)
    _, our_intent = start_3d_secure(by_owner, ours)
    # Another invoice of the same account, paid at once.
    sibling = make_invoice(account)
    by_owner.pay_new_card(sibling, "pm_card_visa")
    ((_, sibling_intent),) = payments(sibling)
    # Another account's payment, whose card holder has just passed 3-D Secure.
    theirs = make_invoice(other_account)
    stranger = browser_of(other_account.owner, other_account)
    _, their_intent = start_3d_secure(stranger, theirs)
    server.complete_authentication(their_intent, succeed=True)
    before = list(Transaction.objects.order_by("pk").values_list("pk", "status", "reference"))
    our_return = reverse("billing:invoice_pay_return", args=[ours.pk])
    for forged in (sibling_intent, their_intent, "pi_0NoSuchIntent", ""):
        answer = by_owner.get(our_return, {"payment_intent": forged}, follow=True)
        assert answer.redirect_chain == [(detail_url(ours), 302)], forged
        assert "not one of this invoice's" in shown(answer), forged
    # Their invoice's return page is not ours to open.
    their_return = reverse("billing:invoice_pay_return", args=[theirs.pk])
    assert by_owner.get(their_return, {"payment_intent": their_intent}).status_code == 404
    after = list(Transaction.objects.order_by("pk").values_list("pk", "status", "reference"))
    assert after == before
    assert (status_of(ours), status_of(theirs)) == (Invoice.Status.UNPAID, Invoice.Status.UNPAID)
    assert server.intent(our_intent)["status"] == "requires_action"
    # Their own return records their payment, once, for them.
    stranger.get(their_return, {"payment_intent": their_intent})
    assert status_of(theirs) == Invoice.Status.PAID
    assert payments(theirs) == [(Transaction.Status.SUCCEEDED, their_intent)]
    assert status_of(ours) == Invoice.Status.UNPAID


def test_stripe_silent_at_the_return_leaves_it_processing_for_the_worker(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    bank_url, intent_id = start_3d_secure(by_owner, invoice)
    back = at_the_bank(bank_url, succeed=True)
    attempts = django_settings.OUTSIDE_CALL_ATTEMPTS
    server.fail_next(*["500"] * attempts, on=f"GET /v1/payment_intents/{intent_id}")
    answer = by_owner.get(path_of(back), follow=True)
    assert answer.redirect_chain == [(detail_url(invoice), 302)]
    assert "Your payment is being processed" in shown(answer)
    assert server.failures == []
    assert payments(invoice) == [(Transaction.Status.PROCESSING, intent_id)]
    assert status_of(invoice) == Invoice.Status.UNPAID
    assert services.payments_reconcile_due(now=after_grace()).startswith("card payments: 1 settled")
    assert status_of(invoice) == Invoice.Status.PAID
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    assert receipts() == 1


# --- 3. Stripe's webhooks on this flow ------------------------------------------------------


def deliver(
    server: StripeServer,
    event: dict[str, Any],
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
) -> Any:
    """Stripe posting `event` to our webhook endpoint (no session, no CSRF token)."""
    payload = json.dumps(event)
    return Client(enforce_csrf_checks=True).post(
        reverse("billing:stripe_webhook"),
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=StripeServer.sign(payload, secret, timestamp=timestamp),
    )


def test_the_webhook_before_the_browsers_return_then_the_return_says_already_recorded(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    bank_url, intent_id = start_3d_secure(by_owner, invoice)
    back = at_the_bank(bank_url, succeed=True)
    # Stripe's event arrives while the browser is still on its way back.
    succeeded = server.event("payment_intent.succeeded", server.intent(intent_id))
    answer = deliver(server, succeeded)
    assert answer.status_code == 200 and answer.json()["result"].endswith(": paid")
    assert status_of(invoice) == Invoice.Status.PAID
    returned = by_owner.get(path_of(back), follow=True)
    assert returned.redirect_chain == [(detail_url(invoice), 302)]
    assert "This payment was already recorded." in shown(returned)
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    assert receipts() == 1


def test_a_duplicated_webhook_records_one_payment(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    bank_url, intent_id = start_3d_secure(by_owner, invoice)
    back = at_the_bank(bank_url, succeed=True)
    succeeded = server.event("payment_intent.succeeded", server.intent(intent_id))
    assert deliver(server, succeeded).json()["state"] == "processed"
    # Stripe's retry of the same event, and a second event of the same success.
    assert deliver(server, succeeded).status_code == 200
    again = server.event("payment_intent.succeeded", server.intent(intent_id))
    assert deliver(server, again).status_code == 200
    by_owner.get(path_of(back))
    assert StripeEvent.objects.filter(event_id=succeeded["id"]).count() == 1
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == (Invoice.Status.PAID, invoice.total)
    assert receipts() == 1


def test_a_failure_event_after_the_success_changes_nothing(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    bank_url, intent_id = start_3d_secure(by_owner, invoice)
    # The failure Stripe reported of an earlier attempt, delivered after the success.
    failed = server.intent(intent_id) | {
        "status": "requires_payment_method",
        "next_action": None,
        "last_payment_error": {
            "type": "card_error",
            "code": "card_declined",
            "message": "Your card was declined.",
        },
    }
    back = at_the_bank(bank_url, succeed=True)
    deliver(server, server.event("payment_intent.succeeded", server.intent(intent_id)))
    assert deliver(server, server.event("payment_intent.payment_failed", failed)).status_code == 200
    returned = by_owner.get(path_of(back), follow=True)
    assert "This payment was already recorded." in shown(returned)
    assert status_of(invoice) == Invoice.Status.PAID
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    assert receipts() == 1


@pytest.mark.parametrize("forgery", ["bad signature", "stale timestamp"])
def test_a_refused_webhook_does_nothing_and_the_return_records_one_payment(
    forgery: str,
    account: Account,
    by_owner: Browser,
    stripe: StripeGateway,
    server: StripeServer,
) -> None:
    invoice = make_invoice(account)
    bank_url, intent_id = start_3d_secure(by_owner, invoice)
    back = at_the_bank(bank_url, succeed=True)
    succeeded = server.event("payment_intent.succeeded", server.intent(intent_id))
    if forgery == "bad signature":
        refused = deliver(server, succeeded, secret="whsec_not_the_endpoints_secret")
    else:
        refused = deliver(server, succeeded, timestamp=int(time.time()) - 3600)
    assert refused.status_code == 400
    assert not StripeEvent.objects.exists()
    assert payments(invoice) == [(Transaction.Status.PROCESSING, intent_id)]
    assert status_of(invoice) == Invoice.Status.UNPAID
    returned = by_owner.get(path_of(back), follow=True)
    assert f"invoice #{invoice.number} is paid" in shown(returned)
    # Stripe retries the genuine event later: already recorded, nothing more.
    assert deliver(server, succeeded).status_code == 200
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    assert receipts() == 1


# --- 4. a 3-D Secure payment abandoned at the bank ------------------------------------------


def give_up_time() -> datetime.datetime:
    hours = django_settings.PENDING_CHANGE_GIVE_UP_HOURS
    return timezone.now() + datetime.timedelta(hours=hours, minutes=1)


def after_grace() -> datetime.datetime:
    seconds = django_settings.PENDING_CHANGE_GRACE_SECONDS + 1
    return timezone.now() + datetime.timedelta(seconds=seconds)


def test_an_abandoned_payment_waits_for_the_bank_and_is_cancelled_at_stripe(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    bank_url, intent_id = start_3d_secure(by_owner, invoice)
    # The card holder closed the bank's page: the pay page says what waits, and offers
    # to cancel it instead of another payment.
    waiting = by_owner.get(pay_url(invoice))
    assert waiting.context["form"] is None and waiting.context["awaiting_authentication"]
    page = shown(waiting)
    assert "A payment is waiting for the card holder's bank" in page
    cancel_url = reverse("billing:invoice_pay_cancel", args=[invoice.pk])
    assert f'action="{cancel_url}"' in page and "Cancel this payment" in page
    answer = by_owner.post(cancel_url, follow=True)
    assert answer.redirect_chain == [(pay_url(invoice), 302)]
    assert "The payment was cancelled and nothing was charged" in shown(answer)
    intent = server.intent(intent_id)
    assert (intent["status"], intent["cancellation_reason"]) == ("canceled", "abandoned")
    assert httpx.get(bank_url).status_code == 404  # the bank's page is gone
    assert payments(invoice) == [(Transaction.Status.FAILED, intent_id)]
    assert status_of(invoice) == Invoice.Status.UNPAID
    # Payable again: a fresh form, and a payment that goes through.
    assert answer.context["form"] is not None and answer.context["processing"] is None
    assert by_owner.pay_new_card(invoice, "pm_card_visa").status_code == 302
    assert status_of(invoice) == Invoice.Status.PAID
    assert succeeded_charges(server) == 1
    assert receipts() == 1


def test_cancelling_a_payment_that_succeeded_meanwhile_records_it_paid(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    _, intent_id = start_3d_secure(by_owner, invoice)
    # The card holder did pass 3-D Secure, but their browser never came back to us.
    server.complete_authentication(intent_id, succeed=True)
    answer = by_owner.post(reverse("billing:invoice_pay_cancel", args=[invoice.pk]), follow=True)
    assert answer.redirect_chain == [(detail_url(invoice), 302)]
    assert f"invoice #{invoice.number} is paid" in shown(answer)
    assert server.intent(intent_id)["status"] == "succeeded"
    assert status_of(invoice) == Invoice.Status.PAID
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    assert receipts() == 1


def test_the_worker_cancels_an_abandoned_payment_at_stripe_when_it_gives_up(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    bank_url, intent_id = start_3d_secure(by_owner, invoice)
    # Before giving up, the worker only asks: the card holder may still be at the bank.
    assert services.payments_reconcile_due(now=after_grace()).endswith("1 still processing")
    assert server.intent(intent_id)["status"] == "requires_action"
    assert payments(invoice) == [(Transaction.Status.PROCESSING, intent_id)]
    summary = services.payments_reconcile_due(now=give_up_time())
    assert "1 failed" in summary
    intent = server.intent(intent_id)
    assert (intent["status"], intent["cancellation_reason"]) == ("canceled", "abandoned")
    assert httpx.get(bank_url).status_code == 404
    assert payments(invoice) == [(Transaction.Status.FAILED, intent_id)]
    assert status_of(invoice) == Invoice.Status.UNPAID
    assert by_owner.get(pay_url(invoice)).context["form"] is not None
    assert services.payments_reconcile_due(now=give_up_time()) == ""
    assert succeeded_charges(server) == 0
    assert receipts() == 0


def test_the_worker_settles_a_3d_secure_payment_whose_browser_and_webhook_never_came(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    _, intent_id = start_3d_secure(by_owner, invoice)
    server.complete_authentication(intent_id, succeed=True)  # then the tab was closed
    assert services.payments_reconcile_due(now=after_grace()).startswith("card payments: 1 settled")
    assert status_of(invoice) == Invoice.Status.PAID
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    assert server.intent(intent_id)["status"] == "succeeded"  # not cancelled
    assert receipts() == 1
    assert services.payments_reconcile_due(now=give_up_time()) == ""


def test_cancelling_while_stripe_cannot_be_reached_leaves_it_waiting(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    _, intent_id = start_3d_secure(by_owner, invoice)
    by_owner.get(pay_url(invoice))
    server.fail_next(*["429"] * 20, on=f"GET /v1/payment_intents/{intent_id}")
    cancel_url = reverse("billing:invoice_pay_cancel", args=[invoice.pk])
    answer = by_owner.post(cancel_url, follow=True)
    assert answer.redirect_chain == [(pay_url(invoice), 302)]
    assert "could not be reached, so the payment is still waiting" in shown(answer)
    assert answer.context["awaiting_authentication"]  # Cancel still offered
    assert server.intent(intent_id)["status"] == "requires_action"
    assert payments(invoice) == [(Transaction.Status.PROCESSING, intent_id)]
    server.failures.clear()  # Stripe answers again
    by_owner.post(cancel_url)
    assert server.intent(intent_id)["status"] == "canceled"
    assert payments(invoice) == [(Transaction.Status.FAILED, intent_id)]


def test_credit_applied_first_then_3d_secure_pays_the_rest(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    services.credit_add(
        account_id=account.pk, amount=Decimal("23.00"), reason="goodwill", actor=account.owner
    )
    invoice = make_invoice(account)  # 123.00
    key = by_owner.open_pay_page(invoice)
    answer = by_owner.post(
        pay_url(invoice),
        {
            "apply_credit": "on",
            "method": "new_card",
            "card_token": server.create_payment_method("pm_card_authenticationRequired"),
            "idempotency_key": key,
        },
    )
    bank_url = bank_url_of(answer)
    (intent,) = server.state.payment_intents.values()
    assert intent["amount"] == 10000  # the rest, after the credit
    invoice.refresh_from_db()
    assert invoice.amount_paid == Decimal("23.00")
    by_owner.get(path_of(at_the_bank(bank_url, succeed=True)))
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == (Invoice.Status.PAID, invoice.total)
    account.refresh_from_db()
    assert account.credit_balance == Decimal("0.00")
    statuses = [(tx.gateway, tx.status, tx.amount) for tx in Transaction.objects.order_by("pk")]
    assert statuses == [
        ("credit", Transaction.Status.SUCCEEDED, Decimal("23.00")),
        ("stripe", Transaction.Status.SUCCEEDED, Decimal("100.00")),
    ]
    assert receipts() == len(statuses)  # one per payment recorded


# --- 5. a test per failure path ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("card", "status", "reason"),
    [
        ("pm_card_chargeDeclined", Transaction.Status.DECLINED, "Your card was declined."),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            Transaction.Status.DECLINED,
            "Your card has insufficient funds.",
        ),
        (
            "pm_card_chargeDeclinedProcessingError",
            Transaction.Status.FAILED,
            "An error occurred while processing your card. Try again in a little bit.",
        ),
    ],
)
def test_a_refused_card_ends_unpaid_with_stripes_reason_and_a_fresh_form(
    card: str,
    status: str,
    reason: str,
    account: Account,
    by_owner: Browser,
    stripe: StripeGateway,
    server: StripeServer,
) -> None:
    invoice = make_invoice(account)
    key = by_owner.open_pay_page(invoice)
    answer = by_owner.pay_new_card(invoice, card)
    assert answer.status_code == 200  # the pay page again, saying why
    assert reason in shown(answer)
    if status == Transaction.Status.FAILED:
        assert "you were not charged" in shown(answer)
    form = answer.context["form"]
    assert form is not None and form["idempotency_key"].value() != key
    assert status_of(invoice) == Invoice.Status.UNPAID
    ((recorded, intent_id),) = payments(invoice)
    assert recorded == status and intent_id.startswith("pi_")
    assert server.intent(intent_id)["status"] == "requires_payment_method"
    assert succeeded_charges(server) == 0
    assert receipts() == 0
    # The attempt is in the invoice's payment list, with the reason.
    assert f"{Transaction.Status(status).label}: {reason}" in shown(
        by_owner.get(detail_url(invoice))
    )


def test_a_lost_answer_leaves_it_processing_and_the_worker_settles_it_once(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    # Stripe charges, but its answer never comes back, however often it is asked.
    attempts = django_settings.OUTSIDE_CALL_ATTEMPTS
    server.fail_next(*["timeout"] * attempts, on="POST /v1/payment_intents")
    answer = by_owner.pay_new_card(invoice, "pm_card_visa", follow=True)
    assert answer.redirect_chain == [(detail_url(invoice), 302)]
    assert "Your payment is being processed" in shown(answer)
    assert "You will not be charged twice" in shown(answer)
    assert payments(invoice) == [(Transaction.Status.PROCESSING, "")]
    assert len(server.state.payment_intents) == 1 and succeeded_charges(server) == 1
    # Nobody is offered to pay it again meanwhile.
    assert by_owner.get(pay_url(invoice)).context["form"] is None
    assert services.payments_reconcile_due(now=after_grace()).startswith("card payments: 1 settled")
    (intent_id,) = server.state.payment_intents
    assert status_of(invoice) == Invoice.Status.PAID
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    assert receipts() == 1
    # Once: asked again, nothing is due; nothing more was charged.
    assert services.payments_reconcile_due(now=give_up_time()) == ""
    assert succeeded_charges(server) == 1 and receipts() == 1


def test_stripe_unreachable_charges_nothing_and_says_so(
    account: Account, by_owner: Browser, stripe: StripeGateway, settings: SettingsWrapper
) -> None:
    invoice = make_invoice(account)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{port}"
    down = StripeGateway(timeout=1.0)
    with mock.patch.dict(gateways.GATEWAYS, {down.code: down}):
        answer = by_owner.pay_new_card(invoice, "pm_card_visa")
    assert answer.status_code == 200
    assert "could not be checked right now and nothing was charged" in shown(answer)
    assert answer.context["form"] is not None
    assert not Transaction.objects.exists()
    assert status_of(invoice) == Invoice.Status.UNPAID


def test_stripe_refusing_every_charge_attempt_charges_nothing_and_says_so(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    attempts = django_settings.OUTSIDE_CALL_ATTEMPTS
    server.fail_next(*["429"] * attempts, on="POST /v1/payment_intents")
    answer = by_owner.pay_new_card(invoice, "pm_card_visa")
    assert answer.status_code == 200
    assert "you were not charged" in shown(answer)
    assert server.failures == []  # every attempt was refused
    assert server.state.payment_intents == {}
    assert [status for status, _ in payments(invoice)] == [Transaction.Status.FAILED]
    assert status_of(invoice) == Invoice.Status.UNPAID
    assert answer.context["form"] is not None
    assert receipts() == 0


# --- 6. Add a Card with Stripe ------------------------------------------------------------------


def test_add_a_card_saves_it_on_the_accounts_customer(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    add_url = reverse("billing:payment_method_add")
    assert by_owner.get(add_url).status_code == 200
    card = server.create_payment_method("pm_card_mastercard")
    answer = by_owner.post(add_url, {"card_token": card}, follow=True)
    assert answer.redirect_chain == [(reverse("billing:payment_methods"), 302)]
    assert "The Mastercard ending in 4444 was saved." in shown(answer)
    method = PaymentMethod.objects.get(account=account)
    assert (method.gateway, method.token, method.brand, method.last4) == (
        "stripe",
        card,
        "Mastercard",
        "4444",
    )
    customer = StripeCustomer.objects.get(account=account).customer_id
    assert server.state.payment_methods[card]["customer"] == customer
    (setup,) = server.state.setup_intents.values()
    assert (setup["status"], setup["customer"], setup["payment_method"]) == (
        "succeeded",
        customer,
        card,
    )


def test_add_a_card_with_3d_secure_saves_it_once_back_from_the_bank(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    add_url = reverse("billing:payment_method_add")
    by_owner.get(add_url)
    card = server.create_payment_method("pm_card_authenticationRequiredOnSetup")
    bank_url = bank_url_of(by_owner.post(add_url, {"card_token": card}))
    (setup_id,) = server.state.setup_intents
    assert bank_url == f"{server.base_url}/3ds/{setup_id}"
    assert not PaymentMethod.objects.exists()  # not before the bank said yes
    back = at_the_bank(bank_url, succeed=True)
    assert path_of(back).startswith(f"{reverse('billing:payment_method_return')}?")
    answer = by_owner.get(path_of(back), follow=True)
    assert answer.redirect_chain == [(reverse("billing:payment_methods"), 302)]
    assert "The Visa ending in 3155 was saved." in shown(answer)
    method = PaymentMethod.objects.get(account=account)
    assert (method.token, method.last4) == (card, "3155")
    # Stripe's setup_intent.succeeded arrives too, and a reload of the return page:
    # still one card.
    event = server.event("setup_intent.succeeded", dict(server.state.setup_intents[setup_id]))
    assert deliver(server, event).status_code == 200
    by_owner.get(path_of(back))
    assert PaymentMethod.objects.filter(account=account).count() == 1


def test_a_card_save_return_not_started_by_this_session_is_refused(
    account: Account,
    other_account: Account,
    by_owner: Browser,
    browser_of: Callable[[User, Account], Browser],
    stripe: StripeGateway,
    server: StripeServer,
) -> None:
    add_url = reverse("billing:payment_method_add")
    by_owner.get(add_url)
    card = server.create_payment_method("pm_card_authenticationRequiredOnSetup")
    back = at_the_bank(bank_url_of(by_owner.post(add_url, {"card_token": card})), succeed=True)
    setup_query = parse_qs(urlsplit(back).query)
    # The owner's other browser (another session), and another account's owner, come
    # back with that save's id: neither started it.
    second_browser = browser_of(account.owner, account)
    stranger = browser_of(other_account.owner, other_account)
    stranger.get(add_url)
    theirs = server.create_payment_method("pm_card_authenticationRequiredOnSetup")
    assert bank_url_of(stranger.post(add_url, {"card_token": theirs}))  # their own save waits
    expected = {
        # No save waits in that session: nothing to finish.
        "second": (reverse("billing:payment_methods"), "No card confirmation is open"),
        # A save of their own waits, not this one.
        "stranger": (add_url, "The card was not saved: add it again."),
    }
    for name, browser in (("second", second_browser), ("stranger", stranger)):
        answer = browser.get(
            reverse("billing:payment_method_return"),
            {"setup_intent": setup_query["setup_intent"][0]},
            follow=True,
        )
        where, said = expected[name]
        assert answer.redirect_chain == [(where, 302)]
        assert said in shown(answer)
    assert not PaymentMethod.objects.exists()
    # The session that started it finishes it.
    by_owner.get(path_of(back))
    assert list(PaymentMethod.objects.values_list("account", "token")) == [(account.pk, card)]


# --- 7. the Content-Security-Policy ------------------------------------------------------------


def policy(answer: Any) -> dict[str, list[str]]:
    """A Content-Security-Policy header, directive by directive."""
    return parse_policy(answer["Content-Security-Policy"])


def parse_policy(header: str) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in directives, header
        directives[name] = sources
    return directives


def card_entry_config(answer: Any) -> dict[str, Any]:
    """The settings the page hands its card script (json_script)."""
    found = re.search(
        r'<script id="card-entry-config" type="application/json">(.*?)</script>',
        answer.content.decode(),
    )
    assert found is not None
    config: dict[str, Any] = json.loads(found.group(1))
    return config


def test_with_stripe_the_card_pages_allow_exactly_stripe(
    account: Account, by_owner: Browser, stripe: StripeGateway, settings: SettingsWrapper
) -> None:
    default = parse_policy(getattr(settings, "CONTENT_SECURITY_POLICY", DEFAULT_CSP))
    assert "frame-src" not in default  # frames fall back to default-src ('self')
    expected = {
        **default,
        "script-src": [*default["script-src"], *STRIPE_SCRIPT],
        "frame-src": [*default["default-src"], *STRIPE_FRAMES],
        "connect-src": [*default["connect-src"], *STRIPE_API],
    }
    invoice = make_invoice(account)
    pay_page = by_owner.get(pay_url(invoice))
    add_page = by_owner.get(reverse("billing:payment_method_add"))
    for page in (pay_page, add_page):
        assert page.status_code == 200
        assert policy(page) == expected
        body = page.content.decode()
        assert f'<script src="{STRIPE_JS_URL}"></script>' in body
        assert "Sandbox test cards" not in body and "4242 4242 4242 4242" not in body
        assert "data-stripe-element" in body
    assert card_entry_config(pay_page) == {
        "gateway": "stripe",
        "publishable_key": PUBLISHABLE_KEY,
        "mode": "payment",
        "currency": "eur",
        "amount": 12300,
    }
    assert card_entry_config(add_page)["mode"] == "setup"
    # Every other page keeps the default policy, with no Stripe source.
    others = [
        reverse("core:dashboard"),
        reverse("billing:invoice_list"),
        detail_url(invoice),
        reverse("billing:payment_methods"),
        reverse("billing:add_funds"),
    ]
    for url in others:
        page = by_owner.get(url)
        assert page.status_code == 200, url
        assert policy(page) == default, url
        assert "stripe" not in page["Content-Security-Policy"], url
        assert STRIPE_JS_URL not in page.content.decode(), url


def test_with_the_sandbox_the_card_pages_keep_the_default_policy(
    account: Account, by_owner: Browser, settings: SettingsWrapper
) -> None:
    settings.BILLING_CARD_GATEWAY = "sandbox"
    settings.DEMO_MODE = True
    default = parse_policy(getattr(settings, "CONTENT_SECURITY_POLICY", DEFAULT_CSP))
    invoice = make_invoice(account)
    pay_page = by_owner.get(pay_url(invoice))
    add_page = by_owner.get(reverse("billing:payment_method_add"))
    for page in (pay_page, add_page):
        assert page.status_code == 200
        assert policy(page) == default
        assert "stripe" not in page.content.decode().lower()
    assert "Sandbox test cards" in pay_page.content.decode()
    assert card_entry_config(pay_page)["gateway"] == "sandbox"


# --- 8. two people paying at once (PostgreSQL) -----------------------------------------------


def _others_waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_people_paying_at_once_with_new_cards_charge_once_at_stripe(
    account: Account,
    by_owner: Browser,
    by_accountant: Browser,
    stripe: StripeGateway,
    server: StripeServer,
) -> None:
    """As ``test_concurrency``, with Stripe: the owner and the accountant each type a new
    card and submit at the same moment, from two threads with their own connections.
    The first to hold the invoice lock keeps it until the other waits on it; the charge
    at Stripe holds no lock (the other request is answered meanwhile)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has no row locks to race against")
    invoice = make_invoice(account)
    browsers = [by_owner, by_accountant]
    forms = [
        {
            "method": "new_card",
            "card_token": server.create_payment_method(card),
            "idempotency_key": b.open_pay_page(invoice),
        }
        for b, card in zip(browsers, ("pm_card_visa", "pm_card_mastercard"), strict=True)
    ]

    which = threading.local()  # the index of the request a thread serves
    answered = [threading.Event(), threading.Event()]
    first_check = threading.Lock()
    saw_the_other_waiting: list[bool] = []
    real_check = services.cards._check_payable

    def check_payable(invoice: Invoice, source: services.PaySource) -> None:
        if first_check.acquire(blocking=False):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if _others_waiting_on_a_lock():
                    saw_the_other_waiting.append(True)
                    break
                time.sleep(0.02)
        real_check(invoice, source)

    real_charge = stripe.charge
    charge_calls: list[str] = []
    other_answered_during_charge: list[bool] = []

    def charge(**kwargs: Any) -> gateways.ChargeResult:
        charge_calls.append(kwargs["idempotency_key"])
        other_answered_during_charge.append(answered[1 - which.index].wait(timeout=20))
        return real_charge(**kwargs)

    start = threading.Barrier(2)
    responses: list[Any] = [None, None]
    errors: list[BaseException] = []

    def submit(i: int) -> None:
        which.index = i
        try:
            start.wait()
            responses[i] = browsers[i].post(pay_url(invoice), forms[i])
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
        finally:
            answered[i].set()
            connections.close_all()

    with (
        mock.patch.object(stripe, "charge", charge),
        mock.patch.object(services.cards, "_check_payable", check_payable),
    ):
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

    assert errors == []
    assert saw_the_other_waiting == [True], "the two payments did not overlap"
    assert other_answered_during_charge == [True], "the charge held the other payer back"
    # One charge at Stripe, one payment recorded.
    assert len(charge_calls) == 1
    (intent,) = server.state.payment_intents.values()
    assert intent["metadata"] == {"transaction": charge_calls[0]}
    assert succeeded_charges(server) == 1
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent["id"])]
    assert Transaction.objects.get().idempotency_key == charge_calls[0]
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == (Invoice.Status.PAID, invoice.total)
    assert receipts() == 1
    paid, refused = sorted(responses, key=lambda r: r.status_code, reverse=True)
    assert paid.status_code == 302
    assert refused.status_code == 200
    assert "already being processed" in shown(refused)
    assert refused.context["form"] is None  # not offered to pay again


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("racer", ["webhook", "another tab"])
def test_the_return_and_a_webhook_or_another_return_at_once_record_one_payment(
    racer: str,
    account: Account,
    by_owner: Browser,
    browser_of: Callable[[User, Account], Browser],
    stripe: StripeGateway,
    server: StripeServer,
) -> None:
    """The browser's return and Stripe's payment_intent.succeeded (or a second return,
    from the card holder's other tab) settle the same payment at the same moment:
    whoever takes the invoice lock first records it, holding the lock until the other
    waits on it; the other then finds it recorded."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has no row locks to race against")
    invoice = make_invoice(account)
    bank_url, intent_id = start_3d_secure(by_owner, invoice)
    back = path_of(at_the_bank(bank_url, succeed=True))
    event = server.event("payment_intent.succeeded", server.intent(intent_id))
    other = browser_of(account.owner, account)

    def settle(i: int) -> Any:
        if i == 0:
            return by_owner.get(back)
        if racer == "webhook":
            return deliver(server, event)
        return other.get(back)

    first_lock = threading.Lock()
    saw_the_other_waiting: list[bool] = []
    real_lock = services.cards._lock_invoice

    def lock_invoice(invoice_id: int, account: Account | None = None) -> Invoice:
        locked = real_lock(invoice_id, account)
        if first_lock.acquire(blocking=False):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if _others_waiting_on_a_lock():
                    saw_the_other_waiting.append(True)
                    break
                time.sleep(0.02)
        return locked

    start = threading.Barrier(2)
    responses: list[Any] = [None, None]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            start.wait()
            responses[i] = settle(i)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    with mock.patch.object(services.cards, "_lock_invoice", lock_invoice):
        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

    assert errors == []
    assert saw_the_other_waiting == [True], "the two did not overlap"
    assert [r.status_code for r in responses] == [302, 200 if racer == "webhook" else 302]
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    invoice.refresh_from_db()
    assert (invoice.status, invoice.amount_paid) == (Invoice.Status.PAID, invoice.total)
    assert receipts() == 1
    assert succeeded_charges(server) == 1
