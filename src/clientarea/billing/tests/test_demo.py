from __future__ import annotations

import pytest
from django.db import transaction

from clientarea.accounts.models import Account, User
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory, UserFactory
from clientarea.billing import demo
from clientarea.billing.models import Invoice, PaymentMethod, Transaction
from clientarea.core.demo import DemoContext

pytestmark = pytest.mark.django_db


def test_demo_billing_shows_every_state(account: Account, other_account: Account) -> None:
    accountant: User = MembershipFactory(account=account, permissions=["invoices"]).user
    ctx = DemoContext(
        owner=account.owner,
        accountant=accountant,
        developer=UserFactory(),
        partner=UserFactory(),
        staff=UserFactory(is_staff=True),
        other_owner=other_account.owner,
        main=account,
        second=AccountFactory(owner=account.owner),
        other=other_account,
    )
    # The demo loads in one transaction (core.demo.demo_load), where nothing outside may
    # be called: its card payments are still recorded, each once.
    with transaction.atomic():
        demo.load(ctx)
    paid_by_card = Transaction.objects.filter(gateway="sandbox", status="succeeded")
    assert paid_by_card.count() == 3
    # A declined attempt is listed on the overdue invoice with the bank's reason.
    declined = Transaction.objects.get(gateway="sandbox", status="declined")
    assert declined.invoice.display_status == "overdue"
    assert declined.message == "Your card was declined: insufficient funds."
    mine = Invoice.objects.filter(account=account)
    assert {i.display_status for i in mine} == {"paid", "unpaid", "overdue", "cancelled"}
    assert Invoice.objects.filter(account=other_account).count() == 2
    assert PaymentMethod.objects.filter(account=account).count() == 1
    account.refresh_from_db()
    assert account.credit_balance > 0
