"""Add Funds (an invoice that, once paid, goes to the credit balance, within staff's limits)
and paying several invoices at once (a combined invoice that pays each of them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from clientarea.accounts.models import Account
from clientarea.accounts.tests.factories import access_of
from clientarea.audit.models import AuditEvent
from clientarea.billing import purchases, services
from clientarea.billing.models import CreditEntry, Invoice, Transaction
from clientarea.billing.totals import LineInput
from clientarea.notifications.models import OutboxEmail

from .factories import card, make_invoice

pytestmark = pytest.mark.django_db
D = Decimal
KEY = "funds-key-0123456789ab"


@pytest.fixture(autouse=True)
def limits(settings: Any) -> None:
    settings.BILLING_ADD_FUNDS_MIN = "10.00"
    settings.BILLING_ADD_FUNDS_MAX = "500.00"
    settings.BILLING_CREDIT_MAX = "800.00"


def pay(invoice: Invoice, source: Any, key: str = KEY) -> services.PaymentOutcome:
    return services.invoice_pay(
        invoice_id=invoice.pk,
        access=access_of(invoice.account.owner, invoice.account),
        source=source,
        idempotency_key=key,
    )


def receipts(account: Account) -> int:
    return OutboxEmail.objects.filter(
        account=account, subject__startswith="Payment receipt"
    ).count()


def balance(account: Account) -> Decimal:
    account.refresh_from_db()
    return account.credit_balance


# --- Add Funds ---------------------------------------------------------------------------


def add(account: Account, amount: str, actor: Any = None) -> Invoice:
    return purchases.funds_invoice_create(
        account=account, actor=actor or account.owner, amount=D(amount)
    )


def test_paid_funds_go_to_the_credit_balance_once_with_a_receipt(account: Account) -> None:
    invoice = add(account, "50.00")
    assert invoice.total == D("50.00") and invoice.tax == D("0.00")
    assert balance(account) == D("0.00")  # nothing before it is paid
    assert pay(invoice, services.PayWithNewCard(token=card())).status == "paid"
    assert balance(account) == D("50.00")
    entry = CreditEntry.objects.get(kind=CreditEntry.Kind.FUNDS)
    assert entry.amount == D("50.00") and entry.invoice_id == invoice.pk
    assert receipts(account) == 1
    # The same form sent again charges nothing and adds nothing.
    assert pay(invoice, services.PayWithNewCard(token=card())).status == "paid"
    assert balance(account) == D("50.00")
    assert CreditEntry.objects.filter(kind=CreditEntry.Kind.FUNDS).count() == 1
    assert AuditEvent.objects.filter(action="credit.funds_added").count() == 1


@pytest.mark.parametrize("amount", ["9.99", "500.01", "0", "-20", "10.001"])
def test_amounts_outside_the_limits_are_refused(account: Account, amount: str) -> None:
    with pytest.raises(services.BillingError):
        add(account, amount)
    assert not Invoice.objects.exists()


def test_the_balance_cannot_pass_its_maximum(account: Account) -> None:
    services.credit_add(account_id=account.pk, amount=D("500"), reason="x", actor=account.owner)
    add(account, "200.00")  # unpaid, but counted
    with pytest.raises(services.BillingError, match=r"up to 100\.00"):
        add(account, "150.00")
    assert Invoice.objects.count() == 1


def test_a_form_sent_twice_makes_one_invoice(account: Account) -> None:
    assert add(account, "40.00").pk == add(account, "40.00").pk


def test_funds_are_not_paid_with_credit(account: Account) -> None:
    services.credit_add(account_id=account.pk, amount=D("100"), reason="x", actor=account.owner)
    invoice = add(account, "40.00")
    with pytest.raises(services.BillingError):
        pay(invoice, services.PayWithCredit())
    assert balance(account) == D("100.00")


def test_funds_by_bank_transfer_once_staff_confirm(account: Account, admin_user: Any) -> None:
    invoice = add(account, "60.00")
    pay(invoice, services.PayByBankTransfer())
    assert balance(account) == D("0.00")
    services.bank_transfer_confirm(invoice_id=invoice.pk, actor=admin_user)
    assert balance(account) == D("60.00")


def test_add_funds_needs_view_and_pay_invoices(
    account: Account, member_factory: Any, login_client: Any
) -> None:
    outsider = member_factory("domains").user
    with pytest.raises(services.BillingError):
        add(account, "20.00", actor=outsider)
    client = login_client(outsider, account)
    assert client.post(reverse("billing:add_funds"), {"amount": "20.00"}).status_code == 403
    assert not Invoice.objects.exists()
    accountant = member_factory("invoices").user
    client = login_client(accountant, account)
    assert "Add Funds" in client.get(reverse("billing:add_funds")).content.decode()
    response = client.post(reverse("billing:add_funds"), {"amount": "20.00"})
    invoice = Invoice.objects.get()
    assert response["Location"] == reverse("billing:invoice_pay", args=[invoice.pk])
    pay_page = client.get(response["Location"]).content.decode()
    assert 'value="credit"' not in pay_page


def test_the_add_funds_page_shows_a_limit_error(account: Account, login_client: Any) -> None:
    client = login_client(account.owner, account)
    page = client.post(reverse("billing:add_funds"), {"amount": "5000"})
    assert page.status_code == 200
    assert "between 10.00 and 500.00" in page.content.decode()
    assert not Invoice.objects.exists()


# --- paying several invoices at once ----------------------------------------------------


def hosting(account: Account, price: str) -> Invoice:
    return make_invoice(account, lines=[LineInput("Hosting", D("1"), D(price), D("23"))])


def combine(account: Account, *invoices: Invoice, actor: Any = None) -> Invoice:
    return purchases.combined_invoice_create(
        account=account, actor=actor or account.owner, invoice_ids=[i.pk for i in invoices]
    )


def test_the_combined_invoice_pays_each_invoice_exactly(account: Account) -> None:
    first, second = hosting(account, "10.01"), hosting(account, "33.33")
    combined = combine(account, first, second)
    assert combined.total == first.total + second.total == D("12.31") + D("41.00")
    assert combined.tax == D("0.00")  # the invoices' own lines carry the tax
    mails_before = receipts(account)
    assert pay(combined, services.PayWithNewCard(token=card())).status == "paid"
    for inv in (first, second):
        inv.refresh_from_db()
        assert inv.status == "paid" and inv.amount_paid == inv.total
        tx = Transaction.objects.get(invoice=inv)
        assert tx.gateway == "combined" and tx.amount == inv.total
        assert (
            AuditEvent.objects.filter(action="invoice.payment", target_id=str(inv.pk)).count() == 1
        )
    assert receipts(account) == mails_before + 1  # one receipt, for the one payment
    # A replayed form pays nothing more.
    pay(combined, services.PayWithNewCard(token=card()))
    assert Transaction.objects.filter(gateway="combined").count() == 2
    assert balance(account) == D("0.00")


def test_an_invoice_paid_on_its_own_cancels_the_unpaid_combined_invoice(
    account: Account, admin_user: Any
) -> None:
    first, second, third = (hosting(account, p) for p in ("10.00", "20.00", "30.00"))
    combined = combine(account, first, second)
    services.credit_add(account_id=account.pk, amount=D("12.30"), reason="x", actor=account.owner)
    pay(first, services.PayWithCredit(), key="first-key-0123456789ab")
    combined.refresh_from_db()
    assert combined.status == "cancelled"  # it no longer asks for money not owed
    with pytest.raises(services.BillingError):
        pay(combined, services.PayWithNewCard(token=card()))
    second.refresh_from_db()
    assert second.status == "unpaid"
    # Cancelling one of them (staff) cancels its combined invoice too.
    again = combine(account, second, third)
    services.invoice_cancel(invoice_id=third.pk, actor=admin_user)
    again.refresh_from_db()
    assert again.status == "cancelled"
    # And the rest can be chosen again.
    assert combine(account, second, hosting(account, "1.00")).status == "unpaid"


def test_an_invoice_paid_on_its_own_while_money_is_on_its_way_leaves_its_share_as_credit(
    account: Account, admin_user: Any
) -> None:
    first, second = hosting(account, "10.00"), hosting(account, "20.00")
    combined = combine(account, first, second)
    pay(combined, services.PayByBankTransfer())  # announced: money is on its way
    services.credit_add(account_id=account.pk, amount=D("12.30"), reason="x", actor=account.owner)
    pay(first, services.PayWithCredit(), key="first-key-0123456789ab")
    combined.refresh_from_db()
    assert combined.status == "unpaid"  # kept: the transfer will pay it
    assert balance(account) == D("0.00")
    services.bank_transfer_confirm(invoice_id=combined.pk, actor=admin_user)
    second.refresh_from_db()
    assert second.status == "paid"
    assert balance(account) == first.total  # its share was no longer needed
    assert CreditEntry.objects.filter(kind=CreditEntry.Kind.SURPLUS).get().amount == first.total


def test_a_combined_invoice_is_not_paid_in_part_with_credit(account: Account) -> None:
    first, second = hosting(account, "10.00"), hosting(account, "20.00")
    combined = combine(account, first, second)
    services.credit_add(account_id=account.pk, amount=D("5.00"), reason="x", actor=account.owner)
    with pytest.raises(services.BillingError, match="does not cover"):
        pay(combined, services.PayWithCredit())
    assert balance(account) == D("5.00")
    services.credit_add(account_id=account.pk, amount=D("50.00"), reason="x", actor=account.owner)
    assert pay(combined, services.PayWithCredit(), key="whole-key-0123456789ab").status == "paid"
    for inv in (first, second):
        inv.refresh_from_db()
        assert inv.status == "paid"
    assert balance(account) == D("55.00") - first.total - second.total


def test_forged_foreign_paid_or_cancelled_ids_are_refused(
    account: Account, other_account: Account, admin_user: Any
) -> None:
    mine = hosting(account, "10.00")
    foreign = hosting(other_account, "10.00")
    paid = hosting(account, "10.00")
    services.credit_add(account_id=account.pk, amount=D("50"), reason="x", actor=account.owner)
    pay(paid, services.PayWithCredit(), key="paid-key-0123456789ab")
    cancelled = hosting(account, "10.00")
    services.invoice_cancel(invoice_id=cancelled.pk, actor=admin_user)
    before = Invoice.objects.count()
    for other in (foreign, paid, cancelled):
        with pytest.raises(services.BillingError):
            combine(account, mine, other)
    with pytest.raises(services.BillingError):
        purchases.combined_invoice_create(
            account=account, actor=account.owner, invoice_ids=[mine.pk, 999999]
        )
    with pytest.raises(services.BillingError):
        combine(account, mine)  # one is not several
    assert Invoice.objects.count() == before


def test_the_same_choice_again_returns_the_same_invoice_and_overlaps_are_refused(
    account: Account,
) -> None:
    a, b, c = hosting(account, "1.00"), hosting(account, "2.00"), hosting(account, "3.00")
    combined = combine(account, a, b)
    assert combine(account, b, a).pk == combined.pk
    with pytest.raises(services.BillingError, match="already in combined invoice"):
        combine(account, b, c)
    with pytest.raises(services.BillingError):
        combine(account, combined, c)  # a combined invoice is not combined again


def test_pay_several_needs_view_and_pay_invoices(
    account: Account, member_factory: Any, login_client: Any
) -> None:
    a, b = hosting(account, "1.00"), hosting(account, "2.00")
    outsider = member_factory("domains").user
    with pytest.raises(services.BillingError):
        combine(account, a, b, actor=outsider)
    response = login_client(outsider, account).post(
        reverse("billing:pay_several"), {"invoices": [a.pk, b.pk]}
    )
    assert response.status_code == 403
    assert Invoice.objects.count() == 2


def test_the_invoice_list_pays_the_chosen_invoices_together(
    account: Account, other_account: Account, login_client: Any
) -> None:
    a, b = hosting(account, "1.00"), hosting(account, "2.00")
    foreign = hosting(other_account, "3.00")
    client = login_client(account.owner, account)
    page = client.get(reverse("billing:invoice_list")).content.decode()
    assert "Pay Selected Invoices" in page and f'value="{a.pk}"' in page
    forged = client.post(reverse("billing:pay_several"), {"invoices": [a.pk, foreign.pk]})
    assert forged["Location"] == reverse("billing:invoice_list")
    assert Invoice.objects.count() == 3
    response = client.post(reverse("billing:pay_several"), {"invoices": [a.pk, b.pk]})
    combined = Invoice.objects.order_by("-pk").first()
    assert combined is not None and combined.total == a.total + b.total
    assert response["Location"] == reverse("billing:invoice_pay", args=[combined.pk])


def test_a_combined_invoice_is_not_counted_twice(account: Account) -> None:
    from clientarea.accounts.policy import access_for
    from clientarea.billing import selectors
    from clientarea.billing.attention import invoices_needing_payment

    first, second = hosting(account, "10.00"), hosting(account, "20.00")
    total, count = selectors.invoice_unpaid_total(account=account), 2
    combined = combine(account, first, second)
    assert selectors.invoice_unpaid_total(account=account) == total == first.total + second.total
    assert selectors.invoice_unpaid_count(account) == count
    access = access_for(account.owner, account.pk)
    assert access is not None
    titles = [item.title for item in invoices_needing_payment(access)]
    assert f"Invoice #{combined.number} is unpaid" not in titles
    assert f"Invoice #{first.number} is unpaid" in titles


def test_the_combined_invoice_links_to_the_invoices_it_pays(
    account: Account, login_client: Any
) -> None:
    first, second = hosting(account, "10.00"), hosting(account, "20.00")
    combined = combine(account, first, second)
    page = login_client(account.owner, account).get(
        reverse("billing:invoice_detail", args=[combined.pk])
    )
    body = page.content.decode()
    for inv in (first, second):
        link = reverse("billing:invoice_detail", args=[inv.pk])
        assert f'<a href="{link}">Invoice #{inv.number}</a>' in body
