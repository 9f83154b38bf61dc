"""The API Tokens page: under Hello, the secret shown once, who sees and revokes what."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.reauth import SESSION_KEY as REAUTH_KEY
from clientarea.api import tokens
from clientarea.api.models import ApiToken
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail

from .helpers import api_get, make_token

pytestmark = pytest.mark.django_db


def _client(user: User, account: Account) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session["current_account_id"] = account.pk
    session[REAUTH_KEY] = int(time.time())
    session.save()
    return client


def _form(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "Accounting export",
        "permissions": ["invoices"],
        "scope_mode": "all",
        "expires_on": (timezone.localdate() + timedelta(days=90)).isoformat(),
        "allowed_networks": "",
    }
    data.update(overrides)
    return data


def test_the_hello_menu_links_the_page_for_anyone_with_access(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets").user
    for user in (account.owner, member):
        page = _client(user, account).get(reverse("core:dashboard")).content.decode()
        assert f'href="{reverse("api_tokens:list")}">API Tokens</a>' in page


def test_create_shows_the_secret_once_and_it_works(account: Account) -> None:
    client = _client(account.owner, account)
    form = client.get(reverse("api_tokens:create")).content.decode()
    assert 'name="expires_on"' in form
    assert (timezone.localdate() + timedelta(days=90)).isoformat() in form  # the default
    response = client.post(reverse("api_tokens:create"), _form(allowed_networks="127.0.0.1"))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    token = ApiToken.objects.get()
    start = html.index('value="ca_pat_') + len('value="')
    secret = html[start : start + tokens.LENGTH]
    assert tokens.secret_hash(secret) == token.secret_hash
    assert token.allowed_networks == ["127.0.0.1/32"]
    assert token.expires_at > timezone.now() + timedelta(days=89)
    assert api_get(secret, "/api/v1/invoices").status_code == 200
    # Never again: the list shows the hint only.
    listed = client.get(reverse("api_tokens:list")).content.decode()
    assert token.name in listed and token.hint in listed and secret not in listed
    assert secret[7:] not in repr(list(AuditEvent.objects.values()))
    assert all(secret[7:] not in e.body_text for e in OutboxEmail.objects.all())


def test_create_needs_a_recent_password(account: Account) -> None:
    client = Client()
    client.force_login(account.owner)
    session = client.session
    session["current_account_id"] = account.pk
    session[REAUTH_KEY] = int(time.time()) - 3600
    session.save()
    response = client.post(reverse("api_tokens:create"), _form())
    assert response.status_code == 302 and "confirm" in response["Location"]
    assert not ApiToken.objects.exists()


def test_forged_permission_is_refused_with_a_message(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets").user
    client = _client(member, account)
    form = client.get(reverse("api_tokens:create")).content.decode()
    assert 'value="tickets"' in form and 'value="invoices"' not in form
    response = client.post(reverse("api_tokens:create"), _form(permissions=["tickets", "invoices"]))
    assert response.status_code == 200
    assert "invoices is not a permission you hold" in response.content.decode()
    assert not ApiToken.objects.exists()


FAR = (timezone.localdate() + timedelta(days=400)).isoformat()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("expires_on", "", "This field is required"),
        ("expires_on", "2000-01-01", "today or a later date"),
        ("expires_on", FAR, "at most one year"),
        ("allowed_networks", "10.0.0.0/8\nnot-a-net", "not-a-net is not an IP address"),
        ("name", "Line\nbreak", "line break"),
        ("permissions", [], "This field is required"),
    ],
)
def test_bad_input_is_a_message_and_changes_nothing(
    account: Account, field: str, value: object, message: str
) -> None:
    client = _client(account.owner, account)
    response = client.post(reverse("api_tokens:create"), _form(**{field: value}))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ApiToken.objects.exists()
    assert not OutboxEmail.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="api_token").exists()


def test_owner_sees_every_token_others_their_own(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    first = member_factory("invoices").user
    second = member_factory("invoices").user
    make_token(account, first, name="First's script")
    make_token(account, second, name="Second's script")
    owner_page = _client(account.owner, account).get(reverse("api_tokens:list")).content.decode()
    assert "First&#x27;s script" in owner_page and "Second&#x27;s script" in owner_page
    assert first.email in owner_page
    first_page = _client(first, account).get(reverse("api_tokens:list")).content.decode()
    assert "First&#x27;s script" in first_page and "Second&#x27;s script" not in first_page


def test_revoke_from_the_page(account: Account, member_factory: Callable[..., Membership]) -> None:
    first = member_factory("invoices").user
    second = member_factory("invoices").user
    token, secret = make_token(account, first)
    url = reverse("api_tokens:revoke", args=[token.pk])
    assert _client(second, account).post(url).status_code == 404  # not theirs
    assert api_get(secret, "/api/v1/account").status_code == 200
    response = _client(account.owner, account).post(url)
    assert response.status_code == 302
    assert api_get(secret, "/api/v1/account").status_code == 401
    listed = _client(first, account).get(reverse("api_tokens:list")).content.decode()
    assert "Revoked" in listed


def test_another_accounts_token_is_a_404(account: Account, other_account: Account) -> None:
    token, secret = make_token(other_account)
    response = _client(account.owner, account).post(reverse("api_tokens:revoke", args=[token.pk]))
    assert response.status_code == 404
    assert api_get(secret, "/api/v1/account").status_code == 200


def test_last_use_shows_on_the_page(account: Account) -> None:
    _, secret = make_token(account)
    api_get(secret, "/api/v1/account", REMOTE_ADDR="192.0.2.44")
    page = _client(account.owner, account).get(reverse("api_tokens:list")).content.decode()
    assert "192.0.2.44" in page and "Never" not in page
