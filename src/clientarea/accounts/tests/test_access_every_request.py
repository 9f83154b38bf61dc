"""Issue 15: the access, the tracked session and the two-factor rule are read anew on
every request, in the one query before the view; nothing of them is cached across
requests. So a change made by any process holds from the very next request on every
process. Each change here is a plain UPDATE behind the app's back (no service, no
signal this process could react to), the way another process's write looks to this one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import UserFactory
from clientarea.api.models import ApiToken
from clientarea.api.tests.helpers import api_get, assert_problem, make_token
from clientarea.security.models import AccountSecurity, TrackedSession

pytestmark = [pytest.mark.django_db, pytest.mark.urls("clientarea.accounts.tests.probe_urls")]

PAGE = "/probe/page/"
PRODUCTS = "/probe/products/"
API = "/api/v1/probe/"


def _signed_in(client: Client) -> Client:
    assert client.get(PAGE).status_code == 200  # the session is tracked from here on
    return client


@pytest.fixture
def member(member_factory: Callable[..., Membership]) -> Membership:
    return member_factory("products", "invoices", scope={"service": [1, 2], "domain": [7]})


def test_a_revocation_holds_on_the_next_request(
    login_client: Callable[..., Client], account: Account, member: Membership
) -> None:
    laptop = _signed_in(login_client(member.user, account))
    phone = _signed_in(login_client(member.user, account))
    Membership.objects.filter(pk=member.pk).update(
        status=Membership.Status.REVOKED, revoked_at=timezone.now()
    )
    for device in (laptop, phone):
        assert device.get(PAGE)["Location"] == reverse("accounts:access_removed")


def test_an_expiry_holds_on_the_next_request_before_the_worker_marks_it(
    login_client: Callable[..., Client], account: Account, member: Membership
) -> None:
    client = _signed_in(login_client(member.user, account))
    Membership.objects.filter(pk=member.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(PAGE)["Location"] == reverse("accounts:access_removed")


def test_a_narrowed_grant_and_scope_hold_on_the_next_request(
    login_client: Callable[..., Client], account: Account, member: Membership
) -> None:
    client = _signed_in(login_client(member.user, account))
    assert client.get(PRODUCTS).json()["scope"] == {"service": [1, 2], "domain": [7]}
    Membership.objects.filter(pk=member.pk).update(scope={"service": [2], "domain": []})
    assert client.get(PRODUCTS).json()["scope"] == {"service": [2], "domain": []}
    Membership.objects.filter(pk=member.pk).update(scope=None)
    assert client.get(PRODUCTS).json()["scope"] is None
    Membership.objects.filter(pk=member.pk).update(permissions=["invoices"])
    assert client.get(PRODUCTS).status_code == 403
    assert client.get(PAGE).json()["permissions"] == ["invoices"]


def test_a_closed_account_or_a_moved_ownership_holds_on_the_next_request(
    login_client: Callable[..., Client], account: Account, other_account: Account
) -> None:
    owner = account.owner
    client = _signed_in(login_client(owner, account))
    assert client.get(PAGE).json()["owner"] is True
    Account.objects.filter(pk=account.pk).update(owner=UserFactory())
    assert client.get(PAGE)["Location"] == reverse("accounts:access_removed")
    mine = _signed_in(login_client(other_account.owner, other_account))
    Account.objects.filter(pk=other_account.pk).update(closed_at=timezone.now())
    assert mine.get(PAGE)["Location"] == reverse("accounts:access_removed")


def test_a_two_factor_rule_switched_on_holds_on_the_next_request(
    login_client: Callable[..., Client], account: Account, member: Membership
) -> None:
    clients = [_signed_in(login_client(u, account)) for u in (account.owner, member.user)]
    AccountSecurity.objects.create(account=account, require_two_factor=True)
    for client in clients:
        assert client.get(PAGE)["Location"] == reverse("security:two_factor_setup")
    device = TOTPDevice.objects.create(user=member.user, name="app", confirmed=True)
    assert clients[1].get(PAGE).status_code == 200
    TOTPDevice.objects.filter(pk=device.pk).update(confirmed=False)
    assert clients[1].get(PAGE)["Location"] == reverse("security:two_factor_setup")
    AccountSecurity.objects.filter(account=account).update(require_two_factor=False)
    assert all(client.get(PAGE).status_code == 200 for client in clients)


def test_a_session_ended_elsewhere_holds_on_the_next_request(
    login_client: Callable[..., Client], account: Account, member: Membership
) -> None:
    stolen = _signed_in(login_client(member.user, account))
    mine = _signed_in(login_client(member.user, account))
    first = TrackedSession.objects.filter(user=member.user).order_by("pk").first()
    assert first is not None
    TrackedSession.objects.filter(pk=first.pk).update(
        ended_at=timezone.now(), end_reason=TrackedSession.EndReason.USER
    )
    assert reverse("accounts:login") in stolen.get(PAGE)["Location"]
    assert reverse("accounts:login") in stolen.get(PAGE)["Location"]
    assert mine.get(PAGE).status_code == 200


def test_the_session_is_written_at_most_once_a_minute(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = _signed_in(login_client(account.owner, account))
    TrackedSession.objects.update(last_seen_at=timezone.now() - timedelta(seconds=61))
    with CaptureQueriesContext(connection) as ctx:
        for _ in range(3):
            assert client.get(PAGE).status_code == 200
    writes = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("UPDATE")]
    assert len(writes) == 1 and "security_trackedsession" in writes[0], writes
    assert TrackedSession.objects.get().last_seen_at > timezone.now() - timedelta(seconds=5)


def test_a_tokens_footing_is_read_on_every_request(account: Account, member: Membership) -> None:
    token, secret = make_token(account, member.user)
    assert api_get(secret, API).status_code == 200
    AccountSecurity.objects.create(account=account, require_two_factor=True)
    assert_problem(api_get(secret, API), 401, "two_factor_required")
    AccountSecurity.objects.filter(account=account).update(require_two_factor=False)
    assert api_get(secret, API).status_code == 200
    Membership.objects.filter(pk=member.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_problem(api_get(secret, API), 401, "creator_access_ended")
    Membership.objects.filter(pk=member.pk).update(expires_at=None)
    assert api_get(secret, API).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    assert_problem(api_get(secret, API), 401, "token_revoked")
