"""Logging in from the attacker's side: brute force, two-factor, replayed codes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import User
from clientarea.accounts.tests.factories import TEST_PASSWORD, UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.security.models import ThrottleBucket

from .factories import fresh_code, totp_now, two_factor_on

pytestmark = pytest.mark.django_db
LOGIN = "/login/"


def _login(client: Client, email: str, password: str, **extra: str) -> Any:
    return client.post(LOGIN, {"username": email, "password": password}, **extra)


def _cool_off_passes() -> None:
    ThrottleBucket.objects.update(blocked_until=timezone.now() - timedelta(seconds=1))


def test_brute_force_on_one_login_hits_the_limit_then_cools_off(client: Client) -> None:
    """ASVS 6.3.1: failed logins limited per (email, address), with a cool-off (the
    address and device rules are in test_login_throttle)."""
    UserFactory(email="victim@example.com")
    for _ in range(5):
        assert _login(client, "victim@example.com", "wrong-guess-123").status_code == 200
    blocked = _login(client, "victim@example.com", TEST_PASSWORD)  # even the right password
    assert blocked.status_code == 429
    assert "Too many attempts" in blocked.content.decode()
    assert "_auth_user_id" not in client.session
    _cool_off_passes()
    assert _login(client, "victim@example.com", TEST_PASSWORD).status_code == 302


def test_the_limit_message_is_the_same_for_unknown_emails(client: Client) -> None:
    """ASVS 6.3.8: throttling does not reveal whether an email has a login."""
    UserFactory(email="known@example.com")
    pages = []
    for email in ("known@example.com", "nobody@example.com"):
        for _ in range(5):
            _login(client, email, "wrong-guess-123")
        pages.append(_login(client, email, "wrong-guess-123"))
    assert pages[0].status_code == pages[1].status_code == 429
    assert pages[0].context["form"].errors == pages[1].context["form"].errors


def test_many_logins_from_one_ip_are_limited(client: Client, settings: Any) -> None:
    """ASVS 6.3.1: credential stuffing across many emails from one IP is limited."""
    settings.SECURITY_THROTTLES = {"login-ip": (4, 900)}
    UserFactory(email="someone@example.com")
    for n in range(4):
        _login(client, f"guess{n}@example.com", "wrong-guess-123", REMOTE_ADDR="203.0.113.9")
    refused = _login(client, "someone@example.com", TEST_PASSWORD, REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 429
    # another address is not affected
    ok = _login(client, "someone@example.com", TEST_PASSWORD, REMOTE_ADDR="198.51.100.1")
    assert ok.status_code == 302


def test_a_user_with_two_factor_needs_a_code_after_the_password(client: Client) -> None:
    """ASVS 6.3.3: the password alone does not log in a user who has two-factor."""
    user = UserFactory(email="tf@example.com")
    device, _ = two_factor_on(user)
    response = _login(client, "tf@example.com", TEST_PASSWORD)
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert "_auth_user_id" not in client.session
    step2 = client.get(LOGIN)
    assert "authenticator app" in step2.content.decode()
    assert client.get(reverse("accounts:profile")).status_code == 302  # not logged in
    done = client.post(LOGIN, {"token": totp_now(device)})
    assert done.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_a_code_replayed_within_its_time_window_is_refused(client: Client) -> None:
    """ASVS 6.6.x (one-time use): a TOTP code that was accepted once is refused after."""
    user = UserFactory(email="tf@example.com")
    device, _ = two_factor_on(user)
    code = fresh_code(device)
    _login(client, "tf@example.com", TEST_PASSWORD)
    assert client.post(LOGIN, {"token": code}).status_code == 302
    attacker = Client()
    _login(attacker, "tf@example.com", TEST_PASSWORD)
    replay = attacker.post(LOGIN, {"token": code})
    assert replay.status_code == 200
    assert "already used" in replay.content.decode()
    assert "_auth_user_id" not in attacker.session


def test_a_recovery_code_works_once(client: Client) -> None:
    """ASVS 6.5.1: lookup secrets are single use."""
    user = UserFactory(email="tf@example.com")
    _, codes = two_factor_on(user)
    _login(client, "tf@example.com", TEST_PASSWORD)
    assert client.post(LOGIN, {"token": codes[0].upper()}).status_code == 302
    again = Client()
    _login(again, "tf@example.com", TEST_PASSWORD)
    assert again.post(LOGIN, {"token": codes[0]}).status_code == 200
    assert "_auth_user_id" not in again.session


def test_guessing_two_factor_codes_hits_the_limit(client: Client) -> None:
    """ASVS 6.3.1: second-factor code entry is throttled too."""
    user = UserFactory(email="tf@example.com")
    device, _ = two_factor_on(user)
    _login(client, "tf@example.com", TEST_PASSWORD)
    for n in range(5):
        assert client.post(LOGIN, {"token": f"{n:06d}"}).status_code == 200
    blocked = client.post(LOGIN, {"token": fresh_code(device)})
    assert blocked.status_code == 429
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="user.two_factor_failed").count() == 5


def test_the_password_step_expires_if_the_code_never_comes(client: Client) -> None:
    """ASVS 6.3.x: a half-finished login does not wait forever."""
    user = UserFactory(email="tf@example.com")
    device, _ = two_factor_on(user)
    _login(client, "tf@example.com", TEST_PASSWORD)
    session = client.session
    session["login_pending"]["at"] -= 3600
    session.save()
    response = client.post(LOGIN, {"token": totp_now(device)})
    assert "_auth_user_id" not in client.session
    assert response.status_code == 200


def test_next_is_kept_through_both_steps_and_never_leaves_the_site(client: Client) -> None:
    """ASVS 3.x (open redirects): only local `next` targets are followed."""
    user = UserFactory(email="tf@example.com")
    device, _ = two_factor_on(user)
    client.post(
        LOGIN, {"username": "tf@example.com", "password": TEST_PASSWORD, "next": "/profile/"}
    )
    assert client.post(LOGIN, {"token": totp_now(device)})["Location"] == "/profile/"
    other = Client()
    UserFactory(email="plain@example.com")
    response = other.post(
        LOGIN,
        {
            "username": "plain@example.com",
            "password": TEST_PASSWORD,
            "next": "https://evil.example/",
        },
    )
    assert response["Location"] == reverse("core:dashboard")
    assert User.objects.count() == 2
