"""Re-authentication before changing email, password or two-factor (ASVS 7.5.1)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account
from clientarea.accounts.reauth import SESSION_KEY
from clientarea.accounts.tests.factories import TEST_PASSWORD, UserFactory
from clientarea.security.models import ThrottleBucket

pytestmark = pytest.mark.django_db


def _stale(client: Client) -> Client:
    session = client.session
    session[SESSION_KEY] = int(time.time()) - 3600
    session.save()
    return client


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("security:two_factor_setup", "get"),
        ("security:two_factor_disable", "post"),
        ("security:recovery_codes", "post"),
        ("security:password_change", "get"),
        ("security:email_change", "get"),
        ("security:email_change", "post"),
    ],
)
def test_sensitive_security_pages_need_a_fresh_password(
    login_client: Callable[..., Client], name: str, method: str
) -> None:
    """ASVS 7.5.1: changing email, password or 2FA asks for the password again."""
    client = _stale(login_client(UserFactory()))
    response = getattr(client, method)(reverse(name), {"email": "new@example.com"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:confirm_password"))


def test_require_two_factor_toggle_needs_a_fresh_password(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = _stale(login_client(account.owner, account))
    response = client.post(reverse("security:require_two_factor"), {"required": "on"})
    assert response["Location"].startswith(reverse("accounts:confirm_password"))


def test_guessing_on_the_confirm_page_is_throttled(login_client: Callable[..., Client]) -> None:
    """ASVS 6.3.1: the confirm-your-password page cannot be used to guess passwords."""
    client = login_client(UserFactory())
    url = reverse("accounts:confirm_password")
    for _ in range(5):
        assert client.post(url, {"password": "a wrong guess", "next": "/"}).status_code == 200
    blocked = client.post(url, {"password": TEST_PASSWORD, "next": "/"})
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.content.decode()
    ThrottleBucket.objects.update(blocked_until=None, failures=0)
    assert client.post(url, {"password": TEST_PASSWORD, "next": "/"}).status_code == 302
