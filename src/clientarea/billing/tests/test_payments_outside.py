"""Card payments and the "record the intent, call outside, record the result" rule.

The card processor is called with no transaction open; a payment is recorded as
processing before the charge and settled exactly once afterwards, by the request or, when
its answer was lost (a timeout, a crash), by the reconciliation job asking the processor.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import access_of
from clientarea.audit.models import AuditEvent
from clientarea.billing import gateways, services
from clientarea.billing.gateways import SANDBOX, ChargeResult, ChargeStatus
from clientarea.billing.models import CreditEntry, Invoice, Transaction
from clientarea.core.outside import OutsideUnavailable, in_transaction
from clientarea.core.registry import PERIODIC_JOBS
from clientarea.notifications.models import OutboxEmail

from .factories import DECLINED_CARD, card, make_invoice, make_payment_method

pytestmark = pytest.mark.django_db
D = Decimal
KEY = "outside-key-0123456789"
TIMEOUT_CARD = "4000000000003006"  # charged, the answer is lost
UNREACHABLE_CARD = "4000000000004004"  # the processor is never reached


@pytest.fixture
def charges() -> Iterator[mock.MagicMock]:
    """Count the sandbox's charge calls (still really performed)."""
    with mock.patch.object(SANDBOX, "charge", wraps=SANDBOX.charge) as spy:
        yield spy


def pay(
    invoice: Invoice, source: Any, key: str = KEY, payer: Any = None
) -> services.PaymentOutcome:
    return services.invoice_pay(
        invoice_id=invoice.pk,
        access=access_of(payer or invoice.account.owner, invoice.account),
        source=source,
        idempotency_key=key,
    )


def after_grace() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=settings.PENDING_CHANGE_GRACE_SECONDS + 1)


def receipts() -> int:
    return OutboxEmail.objects.filter(subject__startswith="Payment receipt").count()


def state(invoice: Invoice) -> tuple[str, Decimal]:
    invoice.refresh_from_db()
    return invoice.status, invoice.amount_paid


# --- the rule itself ---------------------------------------------------------------------


class NoTransactionGateway:
    """A gateway double that fails the test if it is called inside a transaction."""

    code = "sandbox"
    label = "Card (sandbox)"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _check(self, name: str) -> None:
        assert not in_transaction(), f"{name} called inside a database transaction"
        self.calls.append(name)

    def card_from_token(self, token: str) -> gateways.CardToken:
        self._check("card_from_token")
        return SANDBOX.card_from_token(token)

    def customer_for(self, account: Account) -> str:
        self._check("customer_for")
        return SANDBOX.customer_for(account)

    def charge(self, **kwargs: Any) -> ChargeResult:
        self._check("charge")
        return SANDBOX.charge(**kwargs)

    def charge_status(self, idempotency_key: str, reference: str = "") -> ChargeResult | None:
        self._check("charge_status")
        return SANDBOX.charge_status(idempotency_key, reference)

    def charge_cancel(self, idempotency_key: str, reference: str) -> ChargeResult | None:
        self._check("charge_cancel")
        return SANDBOX.charge_cancel(idempotency_key, reference)

    def card_save(self, **kwargs: Any) -> gateways.SaveResult:
        self._check("card_save")
        return SANDBOX.card_save(**kwargs)

    def card_save_status(self, reference: str) -> gateways.SaveResult | None:
        self._check("card_save_status")
        return SANDBOX.card_save_status(reference)

    def card_forget(self, token: str) -> None:
        self._check("card_forget")
        SANDBOX.card_forget(token)


def test_the_card_gateway_is_never_called_inside_a_transaction(account: Account) -> None:
    double = NoTransactionGateway()
    # The check works: a transaction of ours counts, the test case's own does not.
    assert not in_transaction()
    with transaction.atomic():
        assert in_transaction()
        with pytest.raises(AssertionError):
            double.charge_status("x")
    with (
        mock.patch.object(gateways, "SANDBOX", double),
        mock.patch.dict(gateways.GATEWAYS, {"sandbox": double}),
    ):
        method = make_payment_method(account)  # card_from_token, customer_for, card_save
        assert pay(make_invoice(account), services.PayWithNewCard(token=card())).status == "paid"
        stored = services.PayWithStoredMethod(payment_method_id=method.pk)
        assert pay(make_invoice(account), stored, "stored-key-0123456789").status == "paid"
        # A lost answer, then the worker asking the processor.
        lost = make_invoice(account)
        SANDBOX.fail_next("timeout", "timeout", "timeout")
        assert pay(lost, stored, "lost-key-01234567890").status == "processing"
        assert services.payments_reconcile_due(now=after_grace()) != ""
    assert state(lost) == ("paid", lost.total)
    assert {"card_from_token", "customer_for", "card_save", "charge", "charge_status"} <= set(
        double.calls
    )


def test_the_reconciliation_job_is_registered_for_the_worker() -> None:
    assert PERIODIC_JOBS["billing.payments_reconcile"] is services.payments_reconcile_due


# --- a crash between the charge and its recording ---------------------------------------


def test_a_crash_after_the_charge_is_reconciled_to_paid_exactly_once(account: Account) -> None:
    invoice = make_invoice(account)
    OutboxEmail.objects.all().delete()
    with (
        mock.patch.object(
            services.payments, "card_payment_record", side_effect=RuntimeError("crash")
        ),
        pytest.raises(RuntimeError),
    ):
        pay(invoice, services.PayWithNewCard(token=card()))
    # The processor charged; we recorded only the intent.
    tx = Transaction.objects.get()
    assert tx.status == "processing" and tx.get_status_display() == "Processing"
    assert SANDBOX.charge_status(tx.idempotency_key).status == ChargeStatus.SUCCEEDED
    assert state(invoice) == ("unpaid", D("0.00")) and receipts() == 0

    # Within the grace period the job leaves it alone (the request may still finish).
    assert services.payments_reconcile_due() == ""
    summary = services.payments_reconcile_due(now=after_grace())
    assert summary == "card payments: 1 settled, 0 failed, 0 still processing"
    assert state(invoice) == ("paid", invoice.total)
    tx.refresh_from_db()
    assert tx.status == "succeeded" and tx.reference.startswith("ch_sandbox_")
    assert receipts() == 1
    event = AuditEvent.objects.get(action="invoice.payment")
    assert event.changes["settled_by"] == "reconciliation" and event.actor == account.owner

    # Nothing is applied twice: not by the job again, not by the request's late answer.
    assert services.payments_reconcile_due(now=after_grace()) == ""
    late = services.card_payment_record(tx.pk, ChargeResult(ChargeStatus.SUCCEEDED, "ch_late"))
    assert late.status == "paid" and "already recorded" in late.message
    assert state(invoice) == ("paid", invoice.total)
    assert receipts() == 1 and AuditEvent.objects.filter(action="invoice.payment").count() == 1
    assert Transaction.objects.count() == 1


def test_a_crash_before_the_charge_reached_the_processor_fails_the_payment(
    account: Account,
) -> None:
    invoice = make_invoice(account)
    with (
        mock.patch.object(services.payments, "_charge", side_effect=RuntimeError("crash")),
        pytest.raises(RuntimeError),
    ):
        pay(invoice, services.PayWithNewCard(token=card()))
    tx = Transaction.objects.get()
    assert tx.status == "processing" and SANDBOX.charge_status(tx.idempotency_key) is None
    assert services.payments_reconcile_due(now=after_grace()) == (
        "card payments: 0 settled, 1 failed, 0 still processing"
    )
    tx.refresh_from_db()
    assert tx.status == "failed" and tx.message == services.NEVER_RECEIVED_MESSAGE
    assert state(invoice) == ("unpaid", D("0.00")) and receipts() == 0
    # Nothing blocks paying again with a fresh form.
    assert pay(invoice, services.PayWithNewCard(token=card()), "again-key-0123456789").status == (
        "paid"
    )


def test_a_decline_learnt_by_the_job_is_recorded_with_its_reason(account: Account) -> None:
    invoice = make_invoice(account)
    with (
        mock.patch.object(
            services.payments, "card_payment_record", side_effect=RuntimeError("crash")
        ),
        pytest.raises(RuntimeError),
    ):
        pay(invoice, services.PayWithNewCard(token=card(DECLINED_CARD)))
    services.payments_reconcile_due(now=after_grace())
    tx = Transaction.objects.get()
    assert (tx.status, tx.message) == ("declined", "Your card was declined by the bank.")
    assert state(invoice) == ("unpaid", D("0.00"))


# --- timeouts and an unreachable processor -----------------------------------------------


def test_a_charge_whose_answer_never_comes_stays_processing_then_is_reconciled(
    account: Account, charges: mock.MagicMock, login_client: Callable[..., Client]
) -> None:
    invoice = make_invoice(account)
    outcome = pay(invoice, services.PayWithNewCard(token=card(TIMEOUT_CARD)))
    assert outcome.status == "processing"
    assert outcome.message == (
        "Your payment is being processed; the invoice will update when the card processor "
        "confirms it. You will not be charged twice."
    )
    # Retried (bounded) with the same key: the processor charged it once.
    assert charges.call_count == settings.OUTSIDE_CALL_ATTEMPTS
    assert {c.kwargs["idempotency_key"] for c in charges.call_args_list} == {KEY}
    assert state(invoice) == ("unpaid", D("0.00"))
    assert Transaction.objects.get().status == "processing"

    # The customer sees "Processing", and is not offered to pay again.
    client = login_client(account.owner, account)
    detail = client.get(reverse("billing:invoice_detail", args=[invoice.pk])).content.decode()
    assert "Processing" in detail and "is being processed" in detail and "Pay Now" not in detail
    response = client.get(reverse("billing:invoice_pay", args=[invoice.pk]))
    assert response.context["form"] is None
    page = response.content.decode()
    assert "A payment is being processed" in page and "You will not be charged twice." in page
    assert f"Pay {invoice.balance}" not in page

    # The same form submitted again charges nothing more.
    assert pay(invoice, services.PayWithNewCard(token=card(TIMEOUT_CARD))).status == "processing"
    assert charges.call_count == settings.OUTSIDE_CALL_ATTEMPTS

    services.payments_reconcile_due(now=after_grace())
    assert state(invoice) == ("paid", invoice.total)
    assert Transaction.objects.get().status == "succeeded" and receipts() >= 1


def test_a_lost_answer_is_retried_with_the_same_key_and_charges_once(
    account: Account, charges: mock.MagicMock
) -> None:
    invoice = make_invoice(account)
    SANDBOX.fail_next("timeout")
    assert pay(invoice, services.PayWithNewCard(token=card())).status == "paid"
    assert charges.call_count == 2
    assert Transaction.objects.get().status == "succeeded"
    assert state(invoice) == ("paid", invoice.total)


def test_an_unreachable_processor_fails_the_payment_and_charges_nothing(
    account: Account, charges: mock.MagicMock
) -> None:
    invoice = make_invoice(account)
    outcome = pay(invoice, services.PayWithNewCard(token=card(UNREACHABLE_CARD)))
    assert outcome.status == "failed"
    assert outcome.message == (
        "The payment could not be processed and you were not charged. "
        "The card processor could not be reached. Please try again later."
    )
    assert charges.call_count == settings.OUTSIDE_CALL_ATTEMPTS  # bounded retries
    tx = Transaction.objects.get()
    assert tx.status == "failed" and tx.message == "The card processor could not be reached."
    assert SANDBOX.charge_status(KEY) is None
    assert state(invoice) == ("unpaid", D("0.00")) and receipts() == 0
    assert AuditEvent.objects.filter(action="invoice.payment_failed").exists()


def test_a_processor_unreachable_once_is_retried(account: Account, charges: mock.MagicMock) -> None:
    invoice = make_invoice(account)
    SANDBOX.fail_next("unavailable")
    assert pay(invoice, services.PayWithNewCard(token=card())).status == "paid"
    assert charges.call_count == 2


def test_unreachable_after_a_lost_answer_stays_processing(
    account: Account, charges: mock.MagicMock
) -> None:
    """The first attempt may have charged: later "not reached" answers prove nothing."""
    invoice = make_invoice(account)
    SANDBOX.fail_next("timeout", "unavailable", "unavailable")
    assert pay(invoice, services.PayWithNewCard(token=card())).status == "processing"
    services.payments_reconcile_due(now=after_grace())
    assert state(invoice) == ("paid", invoice.total)


def test_the_job_gives_up_on_a_processor_that_never_answers_but_never_calls_it_paid(
    account: Account,
) -> None:
    invoice = make_invoice(account)
    SANDBOX.fail_next("timeout", "timeout", "timeout")
    assert pay(invoice, services.PayWithNewCard(token=card())).status == "processing"
    tx = Transaction.objects.get()
    with mock.patch.object(
        SANDBOX, "charge_status", side_effect=OutsideUnavailable("down")
    ) as status:
        summary = services.payments_reconcile_due(now=after_grace())
        assert summary == "card payments: 0 settled, 0 failed, 1 still processing"
        tx.refresh_from_db()
        assert tx.status == "processing" and tx.check_attempts == 1
        give_up = timezone.now() + datetime.timedelta(
            hours=settings.PENDING_CHANGE_GIVE_UP_HOURS, minutes=1
        )
        assert services.payments_reconcile_due(now=give_up).endswith("1 failed, 0 still processing")
        assert status.call_count == 2 * settings.OUTSIDE_CALL_ATTEMPTS
    tx.refresh_from_db()
    assert tx.status == "failed" and tx.message == services.GAVE_UP_MESSAGE
    assert state(invoice) == ("unpaid", D("0.00")) and receipts() == 0
    # Should the processor's answer still arrive, the money is recorded, not lost.
    result = SANDBOX.charge_status(tx.idempotency_key)
    assert result is not None
    assert services.card_payment_record(tx.pk, result).status == "paid"
    assert state(invoice) == ("paid", invoice.total) and receipts() == 1


# --- one payment at a time, and money never lost ------------------------------------------


def test_while_a_payment_is_processing_no_other_payment_starts(
    account: Account, member_factory: Callable[..., Membership], charges: mock.MagicMock
) -> None:
    accountant = member_factory("invoices").user
    invoice = make_invoice(account)
    method = make_payment_method(account)
    assert pay(invoice, services.PayWithNewCard(token=card(TIMEOUT_CARD))).status == "processing"
    calls = charges.call_count
    services.credit_add(account_id=account.pk, amount=D("500.00"), reason="x", actor=account.owner)
    for i, source in enumerate(
        [
            services.PayWithStoredMethod(payment_method_id=method.pk),
            services.PayWithNewCard(token=card()),
            services.PayWithCredit(),
            services.PayByBankTransfer(),
        ]
    ):
        with pytest.raises(services.BillingError, match="already being processed"):
            pay(invoice, source, f"second-payer-key-{i:04d}", payer=accountant)
    with pytest.raises(services.BillingError, match="being processed"):
        services.invoice_cancel(invoice_id=invoice.pk, actor=account.owner)
    assert charges.call_count == calls and Transaction.objects.count() == 1


def test_the_database_allows_one_processing_payment_per_invoice(account: Account) -> None:
    invoice = make_invoice(account)
    fields = {
        "invoice": invoice,
        "account": account,
        "status": Transaction.Status.PROCESSING,
        "gateway": "sandbox",
        "amount": invoice.total,
        "currency": invoice.currency,
    }
    Transaction.objects.create(**fields, idempotency_key="first-key-0123456789")
    with pytest.raises(IntegrityError), transaction.atomic():
        Transaction.objects.create(**fields, idempotency_key="second-key-012345678")
    # Settled payments of the invoice are not limited.
    Transaction.objects.create(
        **{**fields, "status": Transaction.Status.FAILED}, idempotency_key="third-key-0123456789"
    )


def test_a_card_payment_confirmed_after_the_invoice_was_paid_goes_to_credit(
    account: Account,
) -> None:
    """The invoice was paid by a confirmed bank transfer while the card payment was at
    the processor: the card money is kept as credit, explained, never lost."""
    invoice = make_invoice(account)
    pay(invoice, services.PayByBankTransfer(), "transfer-key-01234567")
    real_charge = SANDBOX.charge

    def charge_while_staff_confirm(**kwargs: Any) -> ChargeResult:
        services.bank_transfer_confirm(invoice_id=invoice.pk, actor=account.owner)
        return real_charge(**kwargs)

    OutboxEmail.objects.all().delete()
    with mock.patch.object(SANDBOX, "charge", side_effect=charge_while_staff_confirm):
        outcome = pay(invoice, services.PayWithNewCard(token=card()))
    assert outcome.status == "paid"
    assert "123.00 EUR" in outcome.message and "credit balance" in outcome.message
    assert state(invoice) == ("paid", invoice.total)  # paid once, by the transfer
    account.refresh_from_db()
    assert account.credit_balance == D("123.00")
    entry = CreditEntry.objects.get()
    assert entry.kind == "surplus" and entry.amount == D("123.00")
    assert f"invoice #{invoice.number}" in entry.reason
    card_tx = Transaction.objects.get(gateway="sandbox")
    assert card_tx.status == "succeeded" and card_tx.amount == D("123.00")
    assert "credit balance" in card_tx.message
    assert receipts() == 2  # the transfer's and the card payment's


def test_paying_through_the_page_with_a_lost_answer_says_processing(
    account: Account, login_client: Callable[..., Client]
) -> None:
    invoice = make_invoice(account)
    client = login_client(account.owner, account)
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    key = client.get(url).context["form"]["idempotency_key"].value()
    response = client.post(
        url,
        {"method": "new_card", "card_token": card(TIMEOUT_CARD), "idempotency_key": key},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("billing:invoice_detail", args=[invoice.pk])
    page = response.content.decode()
    assert "Your payment is being processed" in page and "You will not be charged twice." in page
    assert "Thank you" not in page and "is paid" not in page
    # A second submission of the page (another key) is told the payment is in progress.
    response = client.post(url, {"method": "credit", "idempotency_key": "x" * 20})
    assert response.status_code == 200 and response.context["form"] is None
    assert Transaction.objects.count() == 1
