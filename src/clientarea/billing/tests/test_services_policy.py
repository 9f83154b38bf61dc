"""The billing services ask the policy themselves (issue 12), whoever calls them: paying an
invoice, the return from 3-D Secure and its cancellation, and the owner-only stored cards,
called directly with another account's access, an access revoked after it was built, an
access without View & Pay Invoices: refused (404 / 403 / BillingError), nothing changed,
nothing asked of the card processor."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.policy import Access, NotPermitted, OutOfReach
from clientarea.accounts.services import membership_revoke
from clientarea.accounts.tests.factories import access_of
from clientarea.audit.models import AuditEvent
from clientarea.billing import gateways, services
from clientarea.billing.models import CreditEntry, Invoice, PaymentMethod, Transaction
from clientarea.notifications.models import OutboxEmail

from .factories import card, make_invoice, make_payment_method

pytestmark = pytest.mark.django_db
KEY = "policy-key-0123456789"


def snapshot(*invoices: Invoice) -> tuple[Any, ...]:
    rows = [
        (i.status, i.amount_paid, i.account.credit_balance)
        for i in Invoice.objects.select_related("account").filter(pk__in=[i.pk for i in invoices])
    ]
    return (
        rows,
        Transaction.objects.count(),
        CreditEntry.objects.count(),
        PaymentMethod.objects.count(),
        OutboxEmail.objects.filter(subject__startswith="Payment receipt").count(),
        AuditEvent.objects.filter(action__startswith="invoice.").count(),
    )


def with_credit(account: Account) -> None:
    services.credit_add(
        account_id=account.pk, amount=Decimal("500.00"), reason="t", actor=account.owner
    )


SOURCES: dict[str, Callable[[Account], services.PaySource]] = {
    "credit": lambda a: services.PayWithCredit(),
    "transfer": lambda a: services.PayByBankTransfer(),
    "stored": lambda a: services.PayWithStoredMethod(
        payment_method_id=PaymentMethod.objects.filter(account=a).values_list("pk", flat=True)[0]
    ),
    "new card": lambda a: services.PayWithNewCard(token=card()),
}


def _pay(invoice: Invoice, access: Access, source: services.PaySource, **kw: Any) -> Any:
    return services.invoice_pay(
        invoice_id=invoice.pk, access=access, source=source, idempotency_key=KEY, **kw
    )


def _actors(account: Account, other_account: Account, member_factory: Any) -> dict[str, Any]:
    """Each attacker's access, and the exception the services answer it with."""
    revoked: Membership = member_factory("invoices")
    revoked_access = access_of(revoked.user, account)  # built before the revocation
    membership_revoke(membership=revoked, actor=account.owner)
    return {
        "another account's owner": (access_of(other_account.owner, other_account), OutOfReach),
        "a revoked sub-account": (revoked_access, OutOfReach),
        "a sub-account without invoices": (
            access_of(member_factory("domains", "products").user, account),
            NotPermitted,
        ),
    }


@pytest.mark.parametrize("how", list(SOURCES))
@pytest.mark.parametrize("credit_first", [False, True])
def test_paying_is_refused_to_whoever_the_policy_refuses(
    account: Account,
    other_account: Account,
    member_factory: Any,
    how: str,
    credit_first: bool,
) -> None:
    with_credit(account)
    with_credit(other_account)
    make_payment_method(account)
    make_payment_method(other_account)
    invoice = make_invoice(account)
    actors = _actors(account, other_account, member_factory)
    before = snapshot(invoice)
    source = SOURCES[how](account)
    with (
        mock.patch.object(gateways.SANDBOX, "charge") as charge,
        mock.patch.object(gateways.SANDBOX, "card_from_token") as card_read,
    ):
        for who, (access, refused) in actors.items():
            with pytest.raises(refused):
                _pay(invoice, access, source, apply_credit_first=credit_first)
            assert snapshot(invoice) == before, who
    assert charge.call_count == 0 and card_read.call_count == 0


def test_a_forged_card_of_the_account_does_not_help_another_account(
    account: Account, other_account: Account
) -> None:
    theirs = make_invoice(other_account)
    mine = make_payment_method(account)
    before = snapshot(theirs)
    with pytest.raises(OutOfReach):
        _pay(
            theirs,
            access_of(account.owner, account),
            services.PayWithStoredMethod(payment_method_id=mine.pk),
        )
    assert snapshot(theirs) == before


def test_the_return_and_the_cancel_of_3d_secure_are_refused_too(
    account: Account, other_account: Account, member_factory: Any
) -> None:
    invoice = make_invoice(account)
    tx = Transaction.objects.create(
        invoice=invoice,
        account=account,
        currency=invoice.currency,
        idempotency_key=KEY,
        payer=account.owner,
        status=Transaction.Status.PROCESSING,
        gateway=gateways.SANDBOX.code,
        amount=invoice.balance,
        reference="pi_waiting",
        message=services.AWAITING_AUTHENTICATION,
    )
    actors = _actors(account, other_account, member_factory)
    before = snapshot(invoice)
    with (
        mock.patch.object(gateways.SANDBOX, "charge_status") as status,
        mock.patch.object(gateways.SANDBOX, "charge_cancel") as cancel,
    ):
        for who, (access, refused) in actors.items():
            with pytest.raises(refused):
                services.card_payment_return(
                    invoice_id=invoice.pk, access=access, reference=tx.reference
                )
            with pytest.raises(refused):
                services.card_payment_cancel(invoice_id=invoice.pk, access=access)
            assert snapshot(invoice) == before, who
    assert status.call_count == 0 and cancel.call_count == 0
    tx.refresh_from_db()
    assert tx.status == Transaction.Status.PROCESSING


def test_stored_cards_are_the_current_owners_alone(
    account: Account, other_account: Account, member_factory: Any
) -> None:
    method = make_payment_method(account)
    owner_before = access_of(account.owner, account)
    accountant = access_of(member_factory("invoices").user, account)
    # Ownership moved away after the owner's access was built: it is no owner's any more.
    from clientarea.accounts.tests.factories import UserFactory

    Account.objects.filter(pk=account.pk).update(owner=UserFactory())
    before = snapshot()
    for access in (owner_before, accountant):
        with pytest.raises(services.BillingError, match="Only the account owner"):
            services.payment_method_remove(access=access, payment_method_id=method.pk)
        with pytest.raises(services.BillingError, match="Only the account owner"):
            services.payment_method_add(access=access, token=card())
        with pytest.raises(services.BillingError, match="Only the account owner"):
            services.payment_method_save_return(access=access, reference="seti_1")
        with pytest.raises(services.BillingError, match="Only the account owner"):
            services.payment_method_store(
                access=access, token=gateways.SANDBOX.test_token("visa", 12, 2099)
            )
    assert snapshot() == before
    assert PaymentMethod.objects.filter(pk=method.pk).exists()
    # Another account's owner names this account's card: not theirs to remove.
    with pytest.raises(services.BillingError, match="No such payment method"):
        services.payment_method_remove(
            access=access_of(other_account.owner, other_account), payment_method_id=method.pk
        )
    assert PaymentMethod.objects.filter(pk=method.pk).exists()
