"""Switch Account in the menu: shown exactly when policy.accounts_for finds more than one
account for the person, now; asked with SQL prepared once per process."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import RequestFactory
from django.utils import timezone

from clientarea.accounts.models import Membership, User
from clientarea.accounts.policy import accounts_for
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory, UserFactory
from clientarea.core.context_processors import SELECTABLE, _has_several_accounts


def several(user: User) -> bool:
    request = RequestFactory().get("/")
    request.user = user
    return _has_several_accounts(request)


@pytest.mark.django_db
def test_the_prepared_query_answers_as_accounts_for_does() -> None:
    assert SELECTABLE.is_prepared("default")  # the prepared path is the one tested
    now = timezone.now()
    person = UserFactory()
    stranger = UserFactory()
    cases = []

    def check(what: str) -> None:
        expected = len(accounts_for(person)[:2]) > 1
        cases.append((what, expected))
        assert several(person) is expected, what
        assert several(stranger) is False

    check("no account at all")
    own = AccountFactory(owner=person)
    check("owns one")
    other = MembershipFactory(user=person)
    check("owns one, a member of another")
    other.status = Membership.Status.REVOKED
    other.save()
    check("the membership revoked")
    other.status = Membership.Status.ACTIVE
    other.expires_at = now - timedelta(minutes=1)
    other.save()
    check("the membership expired a minute ago")
    other.expires_at = now + timedelta(days=1)
    other.save()
    check("the membership expires tomorrow")
    other.account.closed_at = now
    other.account.save()
    check("the other account closed")
    own.closed_at = now
    own.save()
    MembershipFactory(user=person)
    MembershipFactory(user=person)
    check("a member of two, owns only a closed one")
    second = AccountFactory(owner=person)
    MembershipFactory(account=second, user=stranger)
    assert several(stranger) is False  # one account: a member of another's
    assert [expected for _, expected in cases] == [
        False,
        False,
        True,
        False,
        False,
        True,
        False,
        True,
    ]
