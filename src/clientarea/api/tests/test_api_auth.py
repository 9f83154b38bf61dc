"""The API from the attacker's side: every way a token should not work, and the session
that must never stand in for one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.services import membership_revoke
from clientarea.accounts.tests.factories import UserFactory
from clientarea.api import tokens
from clientarea.api.models import ApiToken
from clientarea.api.services import token_revoke
from clientarea.audit.models import AuditEvent
from clientarea.billing.tests.factories import make_invoice
from clientarea.security.models import AccountSecurity
from clientarea.security.tests.factories import two_factor_on

from .helpers import api_get, assert_problem, make_token

pytestmark = pytest.mark.django_db

INVOICES = "/api/v1/invoices"
ACCOUNT = "/api/v1/account"


def test_no_token_is_a_401_problem_with_a_bearer_challenge(account: Account) -> None:
    response = api_get(None, INVOICES)
    assert_problem(response, 401)
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Basic b3duZXI6cGFzcw==", "Bearer", "Token abc", "Bearer not-a-token", "Bearer ca_pat_x"],
)
def test_malformed_authorization_is_a_401(account: Account, header: str) -> None:
    response = Client().get(INVOICES, HTTP_AUTHORIZATION=header)
    body = assert_problem(response, 401)
    assert body["code"] in ("bad_authorization", "token_malformed")


def test_well_formed_but_unknown_token_is_a_401(account: Account) -> None:
    assert_problem(api_get(tokens.secret_new(), INVOICES), 401, "token_unknown")


def test_session_cookie_without_token_is_a_401_even_for_the_owner(
    account: Account, login_client: Callable[..., Client]
) -> None:
    """No CSRF hole: a browser's session never authenticates the API."""
    make_invoice(account)
    client = login_client(account.owner, account)
    assert client.get(reverse("billing:invoice_list")).status_code == 200  # logged in
    response = client.get(INVOICES)
    assert_problem(response, 401)
    assert "sessionid" not in response.cookies  # the session was not even touched


def test_token_with_a_session_of_someone_else_acts_only_as_the_token(
    account: Account, other_account: Account, login_client: Callable[..., Client]
) -> None:
    make_invoice(account)
    theirs = make_invoice(other_account)
    _, secret = make_token(account)
    client = login_client(other_account.owner, other_account)
    assert_problem(api_get(secret, f"{INVOICES}/{theirs.pk}", client), 404)
    listed = api_get(secret, INVOICES, client).json()["results"]
    assert theirs.pk not in [row["id"] for row in listed] and len(listed) == 1


def test_token_never_authenticates_a_page(account: Account) -> None:
    _, secret = make_token(account)
    for name in ("billing:invoice_list", "core:dashboard", "api_tokens:list"):
        response = Client().get(reverse(name), HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("accounts:login"))


def test_expired_token_is_a_401(account: Account) -> None:
    token, secret = make_token(account)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_problem(api_get(secret, INVOICES), 401, "token_expired")


def test_revoked_token_is_a_401_at_once(account: Account) -> None:
    token, secret = make_token(account)
    assert api_get(secret, INVOICES).status_code == 200
    token_revoke(token=token, actor=account.owner)
    assert_problem(api_get(secret, INVOICES), 401, "token_revoked")


def test_creator_revoked_token_is_a_401(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    membership = member_factory("invoices")
    _, secret = make_token(account, membership.user)
    assert api_get(secret, INVOICES).status_code == 200
    membership_revoke(membership=membership, actor=account.owner)
    assert_problem(api_get(secret, INVOICES), 401, "token_revoked")


def test_creator_deactivated_token_is_a_401(account: Account) -> None:
    member: User = UserFactory()
    Membership.objects.create(account=account, user=member, permissions=["invoices"])
    _, secret = make_token(account, member)
    member.is_active = False
    member.save()
    assert_problem(api_get(secret, INVOICES), 401, "creator_access_ended")


def test_creators_permissions_reduced_the_token_loses_them(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    membership = member_factory("invoices", "tickets")
    _, secret = make_token(account, membership.user, codes=["invoices", "tickets"])
    assert api_get(secret, INVOICES).status_code == 200
    Membership.objects.filter(pk=membership.pk).update(permissions=["tickets"])
    body = assert_problem(api_get(secret, INVOICES), 403, "permission_missing")
    assert "View & Pay Invoices" in body["detail"]
    assert api_get(secret, ACCOUNT).json()["token"]["permissions"] == ["tickets"]


def test_token_without_the_permission_is_a_403(account: Account) -> None:
    _, secret = make_token(account, codes=["tickets"])
    assert_problem(api_get(secret, INVOICES), 403, "permission_missing")
    assert_problem(api_get(secret, f"{INVOICES}/1"), 403)


def test_two_factor_rule_of_the_account(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("invoices").user
    _, secret = make_token(account, member)
    AccountSecurity.objects.create(account=account, require_two_factor=True)
    body = assert_problem(api_get(secret, INVOICES), 401, "two_factor_required")
    assert "two-factor" in body["detail"]
    two_factor_on(member)
    assert api_get(secret, INVOICES).status_code == 200


def test_allowed_networks_refuse_other_addresses(account: Account) -> None:
    token, secret = make_token(account, allowed_networks=["203.0.113.0/24", "2001:db8::/32"])
    inside = api_get(secret, INVOICES, REMOTE_ADDR="203.0.113.50")
    assert inside.status_code == 200
    assert api_get(secret, INVOICES, REMOTE_ADDR="2001:db8::7").status_code == 200
    refused = api_get(secret, INVOICES, REMOTE_ADDR="198.51.100.1")
    assert_problem(refused, 401, "address_not_allowed")
    # A forged X-Forwarded-For from an untrusted peer changes nothing.
    forged = api_get(
        secret, INVOICES, REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.50"
    )
    assert_problem(forged, 401, "address_not_allowed")
    token.refresh_from_db()
    assert token.last_used_ip == "203.0.113.50" or token.last_used_ip == "2001:db8::7"


def test_last_use_is_recorded(account: Account) -> None:
    token, secret = make_token(account)
    assert token.last_used_at is None
    api_get(secret, ACCOUNT, REMOTE_ADDR="192.0.2.10")
    token.refresh_from_db()
    assert token.last_used_ip == "192.0.2.10" and token.last_used_at is not None


def test_the_secret_reaches_no_log_and_no_audit_event(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    _, secret = make_token(account)
    with caplog.at_level(logging.DEBUG):
        api_get(secret, f"{INVOICES}?status=nonsense")
        api_get(secret, "/api/v1/nowhere")
        logging.getLogger("django.server").info('"GET /api/v1/invoices?token=%s" 200', secret)
        logging.getLogger("test").warning("Authorization: Bearer %s", secret)
    text = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert secret not in text and secret[7:] not in text
    assert "ca_pat_[redacted]" in text
    events = list(AuditEvent.objects.values())
    assert secret[7:] not in repr(events)


def test_rate_limit_is_per_token_with_retry_after(account: Account, settings: Any) -> None:
    from django.core.cache import cache

    cache.clear()
    settings.API_RATE_LIMIT = (3, 60)
    _, first = make_token(account)
    _, second = make_token(account)
    for _ in range(3):
        assert api_get(first, ACCOUNT).status_code == 200
    limited = api_get(first, ACCOUNT)
    body = assert_problem(limited, 429, "rate_limited")
    assert 1 <= int(limited["Retry-After"]) <= 61
    assert "wait" in body["detail"]
    assert api_get(second, ACCOUNT).status_code == 200  # another token counts on its own


def test_rate_window_ends_and_counting_starts_again(settings: Any) -> None:
    from django.core.cache import cache

    from clientarea.api.throttling import rate_consume

    cache.clear()
    settings.API_RATE_LIMIT = (2, 60)
    start = 60 * 1000 + 5.0
    assert rate_consume("t", start) is None
    assert rate_consume("t", start + 1) is None
    assert rate_consume("t", start + 2) == pytest.approx(53.0)
    assert rate_consume("t", start + 55) is None  # the next window


@pytest.mark.django_db
def test_a_json_body_over_the_upload_limit_is_a_413(settings: Any) -> None:
    """Django's DATA_UPLOAD_MAX_MEMORY_SIZE, met when DRF reads the body, is a 413
    problem (it was an unexpected error, a 500), and nothing is changed."""
    from clientarea.accounts.tests.factories import AccountFactory
    from clientarea.api.tests.helpers import make_token

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    account = AccountFactory(city="Cork")
    _, secret = make_token(account, codes=["profile"])
    body = '{"city": "' + "x" * 2000 + '"}'
    response = Client().generic(
        "PATCH",
        "/api/v1/account",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    problem = assert_problem(response, 413, "too_large")
    assert "1,000 bytes" in problem["detail"]
    account.refresh_from_db()
    assert account.city == "Cork"
