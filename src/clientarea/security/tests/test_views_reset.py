"""Password reset from the attacker's side (ASVS 6.3.1, 6.3.8, 6.4.x)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.tests.factories import UserFactory
from clientarea.notifications.models import OutboxEmail

pytestmark = pytest.mark.django_db
RESET = "/password-reset/"


def test_reset_emails_to_one_address_are_limited_silently(client: Client) -> None:
    """ASVS 6.3.1: no mail-bombing one address; the page answers the same every time."""
    UserFactory(email="known@example.com")
    answers = {client.post(RESET, {"email": "known@example.com"})["Location"] for _ in range(6)}
    assert answers == {reverse("accounts:password_reset_done")}
    assert OutboxEmail.objects.filter(to_email="known@example.com").count() == 3


def test_reset_requests_from_one_ip_are_limited(client: Client, settings: Any) -> None:
    settings.SECURITY_THROTTLES = {"reset-ip": (3, 3600)}
    for n in range(3):
        assert client.post(RESET, {"email": f"x{n}@example.com"}).status_code == 302
    refused = client.post(RESET, {"email": "x9@example.com"})
    assert refused.status_code == 429
    assert "Too many attempts" in refused.content.decode()


def test_guessing_reset_links_is_limited(client: Client, settings: Any) -> None:
    """ASVS 6.3.1: invalid reset links count against the IP, then even valid ones wait."""
    settings.SECURITY_THROTTLES = {"token-ip": (3, 3600)}
    UserFactory(email="known@example.com")
    for n in range(3):
        assert client.get(f"{RESET}MQ/guess-{n}/").status_code == 200
    client.post(RESET, {"email": "known@example.com"})
    body = OutboxEmail.objects.get().body_text
    path = "/" + next(w for w in body.split() if "/password-reset/" in w).split("/", 3)[3]
    assert client.get(path).status_code == 429


def test_a_reset_sets_the_password_through_the_rules_and_tells_the_user(client: Client) -> None:
    """ASVS 6.2.1 / 6.3.7: the new password meets the length rule; the user is told."""
    user = UserFactory(email="known@example.com")
    client.post(RESET, {"email": "known@example.com"})
    body = OutboxEmail.objects.get().body_text
    path = "/" + next(w for w in body.split() if "/password-reset/" in w).split("/", 3)[3]
    form_url = client.get(path)["Location"]
    short = client.post(
        form_url, {"new_password1": "short pass 1", "new_password2": "short pass 1"}
    )
    assert short.status_code == 200 and "at least 15" in short.content.decode()
    done = client.post(
        form_url,
        {"new_password1": "a long new passphrase", "new_password2": "a long new passphrase"},
    )
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a long new passphrase")
    assert OutboxEmail.objects.filter(subject__contains="password was changed").exists()
