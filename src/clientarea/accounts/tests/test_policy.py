from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from clientarea.accounts import permissions
from clientarea.accounts.models import Account, Membership
from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import access_for, accounts_for, may
from clientarea.accounts.services import AccessError, membership_grant, membership_revoke
from clientarea.accounts.tests.factories import AccountFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_catalogue_codes_match_the_design() -> None:
    assert [p.code.value for p in permissions.CATALOGUE] == [
        "profile", "contacts", "products", "manageproducts", "domains",
        "managedomains", "invoices", "tickets", "emails",
    ]  # fmt: skip
    assert permissions.BY_CODE["invoices"].label == "View & Pay Invoices"


def test_manage_permissions_imply_their_view_permission() -> None:
    assert permissions.expand(["manageproducts"]) == {"manageproducts", "products"}
    assert permissions.expand(["managedomains"]) == {"managedomains", "domains"}
    assert permissions.normalise(["managedomains", "bogus", 3]) == ["domains", "managedomains"]
    assert permissions.expand("invoices") == frozenset()


def test_owner_may_do_everything(account: Account) -> None:
    for perm in Perm:
        assert may(account.owner, perm, account)


def test_sub_account_may_do_exactly_what_was_granted(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    membership = member_factory("invoices")
    for perm in Perm:
        assert may(membership.user, perm, account) is (perm == "invoices")


def test_revoked_and_expired_memberships_grant_nothing(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    revoked = member_factory("invoices")
    membership_revoke(membership=revoked, actor=account.owner)
    expired = member_factory("invoices", expires_at=timezone.now() - timedelta(minutes=1))
    for m in (revoked, expired):
        assert access_for(m.user, account.pk) is None
        assert not may(m.user, "invoices", account)
        assert account not in accounts_for(m.user)


def test_a_member_of_one_account_has_nothing_on_another(
    account: Account, other_account: Account, member_factory: Callable[..., Membership]
) -> None:
    membership = member_factory(*permissions.ALL_CODES)
    assert access_for(membership.user, other_account.pk) is None
    assert access_for(account.owner, other_account.pk) is None


def test_every_account_has_exactly_one_owner_enforced_by_the_database() -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.create(country="IE", currency="EUR")  # no owner
    account = AccountFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Account.objects.filter(pk=account.pk).update(owner=None)


def test_the_owner_cannot_be_given_a_membership(account: Account) -> None:
    with pytest.raises(AccessError):
        membership_grant(account=account, user=account.owner, permission_codes=["invoices"])


def test_a_user_can_belong_to_several_accounts(account: Account, other_account: Account) -> None:
    user = UserFactory()
    membership_grant(account=account, user=user, permission_codes=["tickets"])
    membership_grant(account=other_account, user=user, permission_codes=["domains"])
    assert set(accounts_for(user)) == {account, other_account}
