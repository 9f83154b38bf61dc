from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.policy import OutOfReach
from clientarea.accounts.tests.factories import ContactFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.billing import gateways, services
from clientarea.billing.models import CreditEntry, Invoice, PaymentMethod, Transaction
from clientarea.notifications.models import OutboxEmail

from .factories import DECLINED_CARD, ERROR_CARD, card, make_invoice, make_payment_method

pytestmark = pytest.mark.django_db
D = Decimal
KEY = "idem-key-0123456789"


@pytest.fixture
def charges() -> Iterator[mock.MagicMock]:
    """Count the sandbox gateway's charges (still really performed)."""
    with mock.patch.object(gateways.SANDBOX, "charge", wraps=gateways.SANDBOX.charge) as spy:
        yield spy


def pay(invoice: Invoice, payer: Any, source: Any, key: str = KEY) -> services.PaymentOutcome:
    return services.invoice_pay(
        invoice_id=invoice.pk,
        access=access_of(payer, invoice.account),
        source=source,
        idempotency_key=key,
    )


def snapshot(invoice: Invoice) -> tuple[Any, ...]:
    invoice.refresh_from_db()
    invoice.account.refresh_from_db()
    return (
        invoice.status,
        invoice.amount_paid,
        invoice.account.credit_balance,
        Transaction.objects.count(),
        OutboxEmail.objects.count(),
        CreditEntry.objects.count(),
        PaymentMethod.objects.count(),
    )


def test_paying_with_a_new_card_records_marks_paid_and_emails_receipts(
    account: Account, member_factory: Callable[..., Membership], charges: mock.MagicMock
) -> None:
    accountant = member_factory("invoices").user
    ContactFactory(account=account, email="books@example.com", email_kinds=["invoice"])
    invoice = make_invoice(account)
    OutboxEmail.objects.all().delete()
    outcome = pay(invoice, accountant, services.PayWithNewCard(token=card()))
    assert outcome.status == "paid"
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID and invoice.balance == D("0.00")
    assert invoice.amount_paid == D("123.00") and invoice.paid_at is not None
    tx = Transaction.objects.get()
    assert (tx.gateway, tx.amount, tx.status, tx.payer) == (
        "sandbox",
        D("123.00"),
        "succeeded",
        accountant,
    )
    assert tx.reference.startswith("ch_sandbox_")
    assert tx.method_label == "Visa ending in 4242"
    receipts = sorted(OutboxEmail.objects.filter(kind="invoice").values_list("to_email", flat=True))
    assert receipts == sorted(["owner@example.com", "books@example.com", accountant.email])
    assert charges.call_count == 1
    assert AuditEvent.objects.filter(action="invoice.payment", actor=accountant).exists()


def test_a_sub_account_paying_with_a_stored_card(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    method = make_payment_method(account)
    accountant = member_factory("invoices").user
    invoice = make_invoice(account)
    outcome = pay(invoice, accountant, services.PayWithStoredMethod(payment_method_id=method.pk))
    assert outcome.status == "paid"
    assert Transaction.objects.get().method_label == "Visa ending in 4242"


def test_a_declined_card_is_recorded_with_its_reason_and_changes_nothing_else(
    account: Account, charges: mock.MagicMock
) -> None:
    invoice = make_invoice(account)
    before = snapshot(invoice)
    outcome = pay(invoice, account.owner, services.PayWithNewCard(token=card(DECLINED_CARD)))
    assert outcome.status == "declined"
    assert outcome.message == "Your card was declined by the bank."
    # The attempt is in the invoice's payment list, with the reason; nothing else moved.
    tx = Transaction.objects.get()
    assert (tx.status, tx.message, tx.amount) == (
        "declined",
        "Your card was declined by the bank.",
        D("123.00"),
    )
    assert tx.get_status_display() == "Declined" and tx.confirmed_at is not None
    after = snapshot(invoice)
    assert after[:3] == before[:3] and after[3] == before[3] + 1 and after[4:] == before[4:]
    assert charges.call_count == 1
    assert AuditEvent.objects.filter(action="invoice.payment_declined").exists()
    # The same form cannot be replayed; a fresh one (new key) can pay.
    with pytest.raises(services.BillingError, match="already used"):
        pay(invoice, account.owner, services.PayWithNewCard(token=card()))
    assert pay(invoice, account.owner, services.PayWithNewCard(token=card()), "k3" * 9).status == (
        "paid"
    )


def test_a_gateway_error_leaves_the_invoice_unpaid_and_records_the_attempt(
    account: Account,
) -> None:
    invoice = make_invoice(account)
    outcome = pay(invoice, account.owner, services.PayWithNewCard(token=card(ERROR_CARD)))
    assert outcome.status == "failed"
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.UNPAID and invoice.amount_paid == 0
    tx = Transaction.objects.get()
    assert tx.status == "failed" and "processing error" in tx.message
    assert AuditEvent.objects.filter(action="invoice.payment_failed").exists()
    # The same form cannot be replayed; a fresh one (new key) can pay.
    with pytest.raises(services.BillingError, match="already used"):
        pay(invoice, account.owner, services.PayWithNewCard(token=card()))
    assert (
        pay(invoice, account.owner, services.PayWithNewCard(token=card()), "k2" * 9).status
        == "paid"
    )


def test_the_same_form_submitted_twice_charges_once(
    account: Account, charges: mock.MagicMock
) -> None:
    invoice = make_invoice(account)
    method = make_payment_method(account)
    source = services.PayWithStoredMethod(payment_method_id=method.pk)
    first = pay(invoice, account.owner, source)
    second = pay(invoice, account.owner, source)
    assert first.status == second.status == "paid"
    assert second.transaction == first.transaction
    assert Transaction.objects.count() == 1 and charges.call_count == 1


def test_a_second_payment_of_a_paid_invoice_is_refused(account: Account) -> None:
    invoice = make_invoice(account)
    pay(invoice, account.owner, services.PayWithNewCard(token=card()))
    with pytest.raises(services.BillingError, match="already paid"):
        pay(invoice, account.owner, services.PayWithNewCard(token=card()), "another-key-12345")
    assert Transaction.objects.count() == 1


def test_paying_with_credit_partly_then_fully(account: Account) -> None:
    invoice = make_invoice(account)  # 123.00
    services.credit_add(account_id=account.pk, amount=D("100.00"), reason="x", actor=account.owner)
    outcome = pay(invoice, account.owner, services.PayWithCredit())
    assert outcome.status == "partial"
    invoice.refresh_from_db()
    account.refresh_from_db()
    assert (invoice.amount_paid, invoice.balance, invoice.status) == (
        D("100.00"),
        D("23.00"),
        "unpaid",
    )
    assert account.credit_balance == D("0.00")
    assert CreditEntry.objects.get(kind="used").amount == D("-100.00")
    with pytest.raises(services.BillingError, match="no credit"):
        pay(invoice, account.owner, services.PayWithCredit(), "second-key-1234567")
    services.credit_add(account_id=account.pk, amount=D("50.00"), reason="x", actor=account.owner)
    assert (
        pay(invoice, account.owner, services.PayWithCredit(), "third-key-12345678").status == "paid"
    )
    account.refresh_from_db()
    assert account.credit_balance == D("27.00")
    assert Transaction.objects.filter(gateway="credit").count() == 2


def test_bank_transfer_waits_for_staff_then_pays(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    accountant = member_factory("invoices").user
    invoice = make_invoice(account)
    outcome = pay(invoice, accountant, services.PayByBankTransfer())
    assert outcome.status == "pending"
    invoice.refresh_from_db()
    assert invoice.status == "unpaid" and invoice.awaiting_transfer_since is not None
    assert Transaction.objects.get().status == "pending"
    with pytest.raises(services.BillingError, match="already awaited"):
        pay(invoice, accountant, services.PayByBankTransfer(), "other-key-12345678")
    OutboxEmail.objects.all().delete()
    services.bank_transfer_confirm(invoice_id=invoice.pk, actor=account.owner)
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.awaiting_transfer_since is None
    tx = Transaction.objects.get()
    assert tx.status == "succeeded" and tx.confirmed_at is not None
    assert accountant.email in OutboxEmail.objects.values_list("to_email", flat=True)
    with pytest.raises(services.BillingError):
        services.bank_transfer_confirm(invoice_id=invoice.pk, actor=account.owner)


def test_another_accounts_card_or_invoice_cannot_be_used(
    account: Account, other_account: Account, charges: mock.MagicMock
) -> None:
    theirs = make_payment_method(other_account)
    invoice = make_invoice(account)
    with pytest.raises(services.BillingError):
        pay(invoice, account.owner, services.PayWithStoredMethod(payment_method_id=theirs.pk))
    their_invoice = make_invoice(other_account)
    # The policy's answer, whoever calls: a 404 that confirms nothing.
    with pytest.raises(OutOfReach, match="No such invoice"):
        services.invoice_pay(
            invoice_id=their_invoice.pk,
            access=access_of(account.owner, account),
            source=services.PayWithNewCard(token=card()),
            idempotency_key=KEY,
        )
    assert charges.call_count == 0 and Transaction.objects.count() == 0


def test_a_sub_account_cannot_store_a_card_even_by_asking(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    accountant = member_factory("invoices").user
    invoice = make_invoice(account)
    pay(invoice, accountant, services.PayWithNewCard(token=card(), save=True))
    assert PaymentMethod.objects.count() == 0
    with pytest.raises(services.BillingError, match="Only the account owner"):
        services.payment_method_add(access=access_of(accountant, account), token=card())
    method = make_payment_method(account)
    with pytest.raises(services.BillingError, match="Only the account owner"):
        services.payment_method_remove(
            access=access_of(accountant, account), payment_method_id=method.pk
        )
    assert PaymentMethod.objects.count() == 1


def test_the_owner_can_save_a_new_card_while_paying(account: Account) -> None:
    invoice = make_invoice(account)
    pay(invoice, account.owner, services.PayWithNewCard(token=card(), save=True))
    method = PaymentMethod.objects.get()
    assert (method.brand, method.last4) == ("Visa", "4242")
    assert method.token.startswith("tok_sandbox_")


def test_sandbox_refuses_unknown_and_forged_tokens(account: Account) -> None:
    invoice = make_invoice(account)
    good = card()
    forged = good.rsplit(":", 1)[0] + ":" + "A" * 43  # the signature replaced
    for token in ("tok_sandbox_4111111111111111", forged, "", "pm_card_visa", "t\x00k"):
        with pytest.raises(services.BillingError):
            pay(invoice, account.owner, services.PayWithNewCard(token=token))
    with pytest.raises(gateways.CardRejected, match="test card"):
        gateways.SANDBOX.test_token("4111111111111111", 12, 2040)
    assert Transaction.objects.count() == 0


def test_an_awaited_transfer_survives_a_partial_payment_and_ends_with_a_full_one(
    account: Account,
) -> None:
    invoice = make_invoice(account)  # 123.00
    pay(invoice, account.owner, services.PayByBankTransfer(), "transfer-key-123456")
    services.credit_add(
        account_id=account.pk, amount=D("23.00"), reason="goodwill", actor=account.owner
    )
    assert pay(invoice, account.owner, services.PayWithCredit(), "credit-key-1234567").status == (
        "partial"
    )
    invoice.refresh_from_db()
    assert invoice.awaiting_transfer_since is not None
    assert Transaction.objects.filter(status="pending").count() == 1
    with pytest.raises(services.BillingError, match="already awaited"):
        pay(invoice, account.owner, services.PayByBankTransfer(), "transfer-key-again1")

    pay(invoice, account.owner, services.PayWithNewCard(token=card()), "card-key-123456789")
    invoice.refresh_from_db()
    assert invoice.status == "paid" and invoice.awaiting_transfer_since is None
    assert not Transaction.objects.filter(status="pending").exists()
    with pytest.raises(services.BillingError):
        services.bank_transfer_confirm(invoice_id=invoice.pk, actor=account.owner)
