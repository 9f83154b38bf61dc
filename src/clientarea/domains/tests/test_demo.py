from __future__ import annotations

from typing import Any

import pytest

from clientarea.accounts.models import Account
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory, UserFactory
from clientarea.core.demo import DemoContext
from clientarea.domains import demo, renewals
from clientarea.domains.models import Domain

pytestmark = pytest.mark.django_db


def test_the_demo_has_a_renewable_domain_with_prices_and_one_without(
    account: Account, other_account: Account
) -> None:
    ctx: Any = DemoContext(
        owner=account.owner,
        accountant=MembershipFactory(account=account, permissions=["invoices"]).user,
        developer=UserFactory(),
        partner=UserFactory(),
        staff=UserFactory(is_staff=True),
        other_owner=other_account.owner,
        main=account,
        second=AccountFactory(owner=account.owner),
        other=other_account,
    )
    demo.load(ctx)
    expiring = Domain.objects.get(name="acme-studio.com")
    assert expiring.expires_soon
    assert [p.years for p in renewals.renewal_periods(expiring, account.currency)] == [1, 2, 3]
    unpriced = Domain.objects.get(name="globex.de")
    assert unpriced.status == Domain.Status.ACTIVE
    assert renewals.renewal_prices(unpriced, other_account.currency) == []
