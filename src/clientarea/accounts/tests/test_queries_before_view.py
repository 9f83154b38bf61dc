"""Issue 15: what a request costs before its view runs. A page: the session, the user and
one query for the whole access (account and owner, the usable membership with its
permissions and scope, the account's two-factor rule, the tracked session's state). The
API: the token, its creator's access and the rate limit's count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.tests import probe_urls
from clientarea.api.tests.helpers import make_token
from clientarea.security.models import AccountSecurity

pytestmark = [pytest.mark.django_db, pytest.mark.urls("clientarea.accounts.tests.probe_urls")]

PAGE_LIMIT = 3  # the session, the user, the access
API_LIMIT = 2  # the token, its creator's access (the rate limit's count apart, below)


def queries_before_view(client: Client, path: str, **extra: Any) -> list[str]:
    """The SQL a request ran before it reached its (query-free) probe view."""
    probe_urls.SEEN.clear()
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(path, **extra)
    assert response.status_code == 200, (response.status_code, response.content[:300])
    assert len(probe_urls.SEEN) == 1
    reached = probe_urls.SEEN[0] - ctx.initial_queries
    return [q["sql"] for q in ctx.captured_queries[:reached]]


def _steady(client: Client, path: str, **extra: Any) -> list[str]:
    # The first request may start tracking the session (a write at login, not per page).
    queries_before_view(client, path, **extra)
    return queries_before_view(client, path, **extra)


def test_owner_page(login_client: Callable[..., Client], account: Account) -> None:
    sql = _steady(login_client(account.owner, account), "/probe/page/")
    assert len(sql) <= PAGE_LIMIT, "\n".join(sql)


def test_owner_page_on_an_account_that_requires_two_factor(
    login_client: Callable[..., Client], account: Account
) -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    AccountSecurity.objects.create(account=account, require_two_factor=True)
    TOTPDevice.objects.create(user=account.owner, name="app", confirmed=True)
    sql = _steady(login_client(account.owner, account), "/probe/page/")
    assert len(sql) <= PAGE_LIMIT, "\n".join(sql)


def test_scoped_sub_account_page(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    member = member_factory("products", scope={"service": [1, 2], "domain": []})
    user: User = member.user
    sql = _steady(login_client(user, account), "/probe/products/")
    assert len(sql) <= PAGE_LIMIT, "\n".join(sql)


def _api_steady(secret: str) -> list[str]:
    """Less the rate limit's one statement, the upsert of the token's count (kept in the
    database unless the cache is Redis or Memcached: api/throttling.py)."""
    sql = _steady(Client(), "/api/v1/probe/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    counting = [q for q in sql if "api_ratewindow" in q]
    assert len(counting) == 1, "\n".join(sql)
    return [q for q in sql if q not in counting]


def test_api_token_request(account: Account) -> None:
    _token, secret = make_token(account)
    sql = _api_steady(secret)
    assert len(sql) <= API_LIMIT, "\n".join(sql)


def test_api_token_of_a_scoped_sub_account(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("invoices", "products", scope={"service": [1], "domain": []})
    _token, secret = make_token(account, member.user)
    sql = _api_steady(secret)
    assert len(sql) <= API_LIMIT, "\n".join(sql)
