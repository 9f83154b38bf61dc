from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from clientarea.accounts.models import Account, Contact
from clientarea.accounts.tests.factories import ContactFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.billing import selectors, services
from clientarea.billing.models import CreditEntry, Invoice, InvoiceCounter, Transaction
from clientarea.billing.totals import LineInput
from clientarea.notifications.models import OutboxEmail

from .factories import card, make_invoice

pytestmark = pytest.mark.django_db
D = Decimal


def test_invoice_numbers_are_sequential_across_accounts_and_never_reused(
    account: Account, other_account: Account
) -> None:
    a = make_invoice(account)
    b = make_invoice(other_account)
    c = make_invoice(account)
    assert (b.number, c.number) == (a.number + 1, a.number + 2)
    services.invoice_cancel(invoice_id=c.pk, actor=account.owner)
    assert make_invoice(account).number == c.number + 1
    assert InvoiceCounter.objects.get().last_number == c.number + 1


def test_a_failed_invoice_creation_takes_no_number(account: Account) -> None:
    first = make_invoice(account)
    with pytest.raises(services.BillingError):
        services.invoice_create(
            account=account,
            lines=[LineInput("x", D("1"), D("10"), D("0"))],
            issue_date=timezone.localdate(),
            due_date=timezone.localdate() - datetime.timedelta(days=1),
        )
    assert make_invoice(account).number == first.number + 1


def test_invoice_totals_are_stored_from_the_lines(account: Account) -> None:
    invoice = make_invoice(
        account,
        lines=[
            LineInput("Hosting", D("1"), D("24.99"), D("23")),
            LineInput("Mailboxes", D("3"), D("1.75"), D("23")),
        ],
    )
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D("30.24"), D("6.96"), D("37.20"))
    assert [ln.net_amount for ln in invoice.lines.all()] == [D("24.99"), D("5.25")]
    assert invoice.balance == D("37.20")
    assert invoice.currency == account.currency
    assert invoice.billing_name == "Acme Web Studio"


def test_creating_an_invoice_emails_the_owner_and_invoice_contacts_only(
    account: Account,
) -> None:
    ContactFactory(account=account, email="books@example.com", email_kinds=["invoice"])
    ContactFactory(account=account, email="tech@example.com", email_kinds=["support"])
    invoice = make_invoice(account)
    emails = OutboxEmail.objects.filter(account=account, kind="invoice")
    assert sorted(e.to_email for e in emails) == ["books@example.com", "owner@example.com"]
    assert all(f"#{invoice.number}" in e.subject for e in emails)
    assert f"/billing/invoices/{invoice.pk}/" in emails[0].body_text
    assert AuditEvent.objects.filter(action="invoice.created", target_id=str(invoice.pk)).exists()
    assert Contact.objects.count() == 2


def test_overdue_is_derived_from_the_due_date(account: Account) -> None:
    invoice = make_invoice(
        account, issue_date=timezone.localdate() - datetime.timedelta(days=30), due_in_days=10
    )
    assert invoice.status == Invoice.Status.UNPAID
    assert invoice.display_status == "overdue" and invoice.display_status_label == "Overdue"


def test_cancel_refuses_paid_invoices_and_refund_returns_credit(account: Account) -> None:
    invoice = make_invoice(account)
    services.invoice_pay(
        invoice_id=invoice.pk,
        access=access_of(account.owner, account),
        source=services.PayWithNewCard(token=card()),
        idempotency_key="k" * 20,
    )
    with pytest.raises(services.BillingError, match="cannot be cancelled"):
        services.invoice_cancel(invoice_id=invoice.pk, actor=account.owner)
    staff = account.owner
    services.invoice_refund(invoice_id=invoice.pk, actor=staff, to_credit=True)
    invoice.refresh_from_db()
    account.refresh_from_db()
    assert invoice.status == Invoice.Status.REFUNDED
    assert account.credit_balance == D("123.00")
    assert CreditEntry.objects.get(kind="refund").amount == D("123.00")
    assert Transaction.objects.filter(kind="refund", amount=D("123.00")).count() == 1
    with pytest.raises(services.BillingError):
        services.invoice_refund(invoice_id=invoice.pk, actor=staff, to_credit=True)


def test_credit_add_locks_updates_and_audits(account: Account) -> None:
    entry = services.credit_add(
        account_id=account.pk, amount=D("25.50"), reason="Goodwill", actor=account.owner
    )
    account.refresh_from_db()
    assert account.credit_balance == D("25.50") == entry.balance_after
    assert AuditEvent.objects.filter(action="credit.added", account=account).exists()
    for bad in (D("0"), D("-5"), D("1.234")):
        with pytest.raises(services.BillingError):
            services.credit_add(account_id=account.pk, amount=bad, reason="x", actor=account.owner)
    account.refresh_from_db()
    assert account.credit_balance == D("25.50")


def test_an_invoice_with_nothing_to_pay_is_settled_from_the_start(account: Account) -> None:
    free = make_invoice(
        account,
        lines=[LineInput("Free SSL certificate", Decimal("1"), Decimal("0.00"), Decimal("23"))],
        issue_date=timezone.localdate() - datetime.timedelta(days=60),
    )
    assert free.status == Invoice.Status.PAID and free.paid_at is not None
    assert not free.is_overdue
    assert selectors.invoice_unpaid_count(account) == 0
