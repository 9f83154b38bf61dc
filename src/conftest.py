"""Fixtures shared by every app's tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory, UserFactory


@pytest.fixture
def owner(db: Any) -> User:
    return UserFactory(email="owner@example.com", first_name="Olivia")


@pytest.fixture
def account(owner: User) -> Account:
    return AccountFactory(owner=owner, company_name="Acme Web Studio")


@pytest.fixture
def other_account(db: Any) -> Account:
    return AccountFactory(company_name="Globex Ltd")


@pytest.fixture
def member_factory(account: Account) -> Callable[..., Membership]:
    """Make a sub-account of `account` holding exactly the given permission codes."""

    def make(*codes: str, account: Account = account, **kwargs: Any) -> Membership:
        return MembershipFactory(account=account, permissions=list(codes), **kwargs)

    return make


@pytest.fixture
def login_client() -> Callable[..., Client]:
    """A client logged in as `user` with `account` selected, CSRF checks on."""

    def make(user: User, account: Account | None = None, *, csrf: bool = False) -> Client:
        client = Client(enforce_csrf_checks=csrf)
        client.force_login(user)
        if account is not None:
            session = client.session
            session["current_account_id"] = account.pk
            session.save()
        return client

    return make
