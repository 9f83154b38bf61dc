"""The pay and Add a Card pages with Stripe taking the cards, through the Django test
client with CSRF checks on, against the local Stripe server.

The browser's part is played here: Stripe.js's ``createPaymentMethod`` is the local
server's ``create_payment_method`` (the page posts the PaymentMethod id it gives), the
card holder at their bank is an HTTP request to the server's 3-D Secure page, whose
redirect the test client then follows back to our return page. Stripe's webhooks are
signed deliveries to our endpoint. Every request our driver sent is checked against
Stripe's published API description (the server fixture's last assertion)."""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.db.models import F
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from clientarea.accounts.middleware import ACCOUNT_PIN_FIELD
from clientarea.accounts.models import Account, Membership, User
from clientarea.billing import gateways
from clientarea.billing.models import (
    Invoice,
    PaymentMethod,
    StripeCustomer,
    StripeEvent,
    Transaction,
)
from clientarea.billing.stripe_gateway import StripeGateway
from clientarea.notifications.models import OutboxEmail

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
    assert answer.templates[0].name == "billing/to_bank.html"
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


# --- 2. 3-D Secure: to the bank and back ---------------------------------------------------


def start_3d_secure(browser: Browser, invoice: Invoice, **kwargs: Any) -> tuple[str, str]:
    """Pay with a card whose bank asks for 3-D Secure: (the bank's page, the intent)."""
    answer = browser.pay_new_card(invoice, "pm_card_authenticationRequired", **kwargs)
    bank_url = bank_url_of(answer)
    ((status, intent_id),) = payments(invoice)
    assert status == Transaction.Status.PROCESSING
    assert bank_url == f"{browser.server.base_url}/3ds/{intent_id}"
    return bank_url, intent_id


def test_3d_secure_completed_ends_paid_with_one_payment_and_one_receipt(
    account: Account, by_owner: Browser, stripe: StripeGateway, server: StripeServer
) -> None:
    invoice = make_invoice(account)
    bank_url, intent_id = start_3d_secure(by_owner, invoice)
    assert server.intent(intent_id)["status"] == "requires_action"
    assert status_of(invoice) == Invoice.Status.UNPAID
    assert receipts() == 0
    back = at_the_bank(bank_url, succeed=True)
    return_path = reverse("billing:invoice_pay_return", args=[invoice.pk])
    assert path_of(back).startswith(f"{return_path}?")
    assert parse_qs(urlsplit(back).query)["payment_intent"] == [intent_id]
    answer = by_owner.get(path_of(back), follow=True)
    assert answer.redirect_chain == [(detail_url(invoice), 302)]
    assert f"invoice #{invoice.number} is paid" in shown(answer)
    assert status_of(invoice) == Invoice.Status.PAID
    assert invoice.amount_paid == invoice.total
    assert payments(invoice) == [(Transaction.Status.SUCCEEDED, intent_id)]
    assert succeeded_charges(server) == 1
    assert receipts() == 1
    # Back again (a reload of the return page): nothing more is recorded.
    again = by_owner.get(path_of(back), follow=True)
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
