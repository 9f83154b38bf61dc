"""Back office: staff create invoices with lines (emailed), cancel, refund, confirm bank
transfers and add credit, all through the services."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.accounts.tests.factories import ContactFactory, UserFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.billing import services
from clientarea.billing.models import CreditEntry, Invoice, InvoiceLine
from clientarea.notifications.models import OutboxEmail

from .factories import make_invoice

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def staff() -> User:
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def admin_client(staff: User) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def line_data(rows: list[tuple[str, str, str, str]]) -> dict[str, str]:
    data = {
        "lines-TOTAL_FORMS": str(len(rows)),
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "1",
        "lines-MAX_NUM_FORMS": "1000",
    }
    for i, (desc, qty, price, rate) in enumerate(rows):
        data |= {
            f"lines-{i}-description": desc,
            f"lines-{i}-quantity": qty,
            f"lines-{i}-unit_price": price,
            f"lines-{i}-tax_rate": rate,
        }
    return data


def test_staff_create_an_invoice_with_lines_and_it_is_emailed(
    admin_client: Client, account: Account
) -> None:
    ContactFactory(account=account, email="books@example.com", email_kinds=["invoice"])
    today = timezone.localdate()
    data = {
        "account": str(account.pk),
        "issue_date": today.isoformat(),
        "due_date": (today + datetime.timedelta(days=14)).isoformat(),
        "notes": "Thank you",
    } | line_data([("Hosting", "1", "24.99", "23"), ("Mailboxes", "3", "1.75", "23")])
    response = admin_client.post(reverse("admin:billing_invoice_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    invoice = Invoice.objects.get()
    assert invoice.total == D("37.20") and InvoiceLine.objects.count() == 2
    assert sorted(OutboxEmail.objects.values_list("to_email", flat=True)) == [
        "books@example.com",
        "owner@example.com",
    ]
    assert AuditEvent.objects.get(action="invoice.created").is_staff_action
    assert (
        admin_client.get(reverse("admin:billing_invoice_change", args=[invoice.pk])).status_code
        == 200
    )


def test_bad_invoice_input_is_a_form_error_not_a_500(
    admin_client: Client, account: Account
) -> None:
    today = timezone.localdate()
    data = {
        "account": str(account.pk),
        "issue_date": today.isoformat(),
        "due_date": (today - datetime.timedelta(days=1)).isoformat(),
    } | line_data([("Hosting", "0", "-1", "150")])
    response = admin_client.post(reverse("admin:billing_invoice_add"), data)
    assert response.status_code == 200
    body = response.content.decode()
    assert "The due date cannot be before the issue date." in body
    assert "The quantity must be more than 0." in body
    assert Invoice.objects.count() == 0


def test_admin_actions_cancel_refund_and_confirm_transfer(
    admin_client: Client, account: Account
) -> None:
    to_cancel, to_refund, by_transfer = (
        make_invoice(account),
        make_invoice(account),
        make_invoice(account),
    )
    services.credit_add(account_id=account.pk, amount=D("123.00"), reason="x", actor=account.owner)
    services.invoice_pay(
        invoice_id=to_refund.pk,
        access=access_of(account.owner, account),
        source=services.PayWithCredit(),
        idempotency_key="a" * 20,
    )
    services.invoice_pay(
        invoice_id=by_transfer.pk,
        access=access_of(account.owner, account),
        source=services.PayByBankTransfer(),
        idempotency_key="b" * 20,
    )
    url = reverse("admin:billing_invoice_changelist")

    def act(action: str, *invoices: Invoice) -> None:
        admin_client.post(url, {"action": action, "_selected_action": [i.pk for i in invoices]})

    act("cancel", to_cancel)
    act("refund_to_credit", to_refund)
    act("confirm_bank_transfer", by_transfer)
    statuses = dict(Invoice.objects.values_list("pk", "status"))
    assert statuses == {to_cancel.pk: "cancelled", to_refund.pk: "refunded", by_transfer.pk: "paid"}
    account.refresh_from_db()
    assert account.credit_balance == D("123.00")
    # An impossible action is reported, not a crash.
    act("cancel", by_transfer)
    assert Invoice.objects.get(pk=by_transfer.pk).status == "paid"


def test_staff_add_credit_through_the_small_form(admin_client: Client, account: Account) -> None:
    add = reverse("admin:billing_creditentry_add")
    bad = admin_client.post(add, {"account": account.pk, "amount": "-5", "reason": "x"})
    assert bad.status_code == 200 and "Enter a positive amount." in bad.content.decode()
    ok = admin_client.post(add, {"account": account.pk, "amount": "40.00", "reason": "Goodwill"})
    assert ok.status_code == 302
    account.refresh_from_db()
    assert account.credit_balance == D("40.00")
    assert CreditEntry.objects.get().balance_after == D("40.00")
    assert AuditEvent.objects.filter(action="credit.added", is_staff_action=True).exists()


def test_admin_pages_load(admin_client: Client, account: Account) -> None:
    make_invoice(account)
    for name in ("invoice", "transaction", "creditentry", "paymentmethod"):
        assert admin_client.get(reverse(f"admin:billing_{name}_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:billing_invoice_add")).status_code == 200
