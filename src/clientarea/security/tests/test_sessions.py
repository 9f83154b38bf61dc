"""Sessions from the attacker's side: a stolen or forgotten session stops working."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.services import membership_revoke
from clientarea.accounts.tests.factories import TEST_PASSWORD, UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail
from clientarea.security.models import TrackedSession

pytestmark = pytest.mark.django_db
PROFILE = "/profile/"


def _login(email: str, ua: str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0") -> Client:
    client = Client(HTTP_USER_AGENT=ua)
    response = client.post("/login/", {"username": email, "password": TEST_PASSWORD})
    assert response.status_code == 302
    return client


def _logged_in(client: Client) -> bool:
    return client.get(PROFILE).status_code == 200


def test_the_security_page_lists_sessions_with_device_and_ip() -> None:
    """ASVS 7.5.2: users see their active sessions."""
    user: User = UserFactory(email="me@example.com")
    laptop = _login("me@example.com")
    _login("me@example.com", ua="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Safari/604.1")
    page = laptop.get(reverse("security:security")).content.decode()
    assert "Firefox on Linux" in page and "Safari on iPhone" in page
    assert "127.0.0.1" in page and "this session" in page
    assert TrackedSession.objects.filter(user=user).active().count() == 2


def test_ending_another_session_logs_it_out() -> None:
    """ASVS 7.5.2: a user can end any of their other sessions."""
    UserFactory(email="me@example.com")
    mine, stolen = _login("me@example.com"), _login("me@example.com")
    other = TrackedSession.objects.order_by("pk").last()
    assert mine.post(reverse("security:session_end", args=[other.pk])).status_code == 302
    assert not _logged_in(stolen)
    assert _logged_in(mine)
    assert AuditEvent.objects.filter(action="session.ended").exists()


def test_end_all_other_sessions() -> None:
    """ASVS 7.5.2: end all others at once; the current one stays."""
    UserFactory(email="me@example.com")
    mine, a, b = (_login("me@example.com") for _ in range(3))
    mine.post(reverse("security:sessions_end_others"))
    assert not _logged_in(a) and not _logged_in(b) and _logged_in(mine)


def test_someone_elses_session_id_is_a_404() -> None:
    """Authorization from the attacker's side: another user's session cannot be ended."""
    UserFactory(email="me@example.com")
    UserFactory(email="victim@example.com")
    attacker = _login("me@example.com")
    victim = _login("victim@example.com")
    theirs = TrackedSession.objects.get(user__email="victim@example.com")
    assert attacker.post(reverse("security:session_end", args=[theirs.pk])).status_code == 404
    assert _logged_in(victim)


def test_ending_a_session_is_post_only() -> None:
    UserFactory(email="me@example.com")
    mine = _login("me@example.com")
    row = TrackedSession.objects.get()
    assert mine.get(reverse("security:session_end", args=[row.pk])).status_code == 405


def test_an_idle_session_ends(settings: Any) -> None:
    """ASVS 7.3.1: inactivity timeout (default 30 minutes)."""
    assert settings.SESSION_IDLE_TIMEOUT == 30 * 60
    UserFactory(email="me@example.com")
    client = _login("me@example.com")
    TrackedSession.objects.update(last_seen_at=timezone.now() - timedelta(minutes=31))
    response = client.get(PROFILE)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert TrackedSession.objects.get().end_reason == "idle"


def test_a_session_past_its_absolute_lifetime_ends_even_when_active(settings: Any) -> None:
    """ASVS 7.3.2: absolute session lifetime (default 12 hours)."""
    assert settings.SESSION_ABSOLUTE_LIFETIME == 12 * 60 * 60
    UserFactory(email="me@example.com")
    client = _login("me@example.com")
    TrackedSession.objects.update(created_at=timezone.now() - timedelta(hours=12, minutes=1))
    assert not _logged_in(client)
    assert TrackedSession.objects.get().end_reason == "lifetime"


def test_an_active_session_is_kept(settings: Any) -> None:
    UserFactory(email="me@example.com")
    client = _login("me@example.com")
    TrackedSession.objects.update(last_seen_at=timezone.now() - timedelta(minutes=29))
    assert _logged_in(client)


def test_an_old_session_is_useless_after_a_password_change() -> None:
    """ASVS 7.4.3 / 6.2.x: a password change ends the user's other sessions."""
    user = UserFactory(email="me@example.com")
    stolen = _login("me@example.com")
    mine = _login("me@example.com")
    response = mine.post(
        reverse("security:password_change"),
        {
            "old_password": TEST_PASSWORD,
            "new_password1": "an entirely new passphrase",
            "new_password2": "an entirely new passphrase",
        },
    )
    assert response.status_code == 302
    assert _logged_in(mine)
    assert not _logged_in(stolen)
    user.refresh_from_db()
    assert user.check_password("an entirely new passphrase")
    assert OutboxEmail.objects.filter(
        to_email="me@example.com", subject__contains="password was changed"
    ).exists()


def test_a_password_reset_ends_every_session() -> None:
    """ASVS 7.4.3: after a reset no earlier session survives."""
    user = UserFactory(email="me@example.com")
    stolen = _login("me@example.com")
    from clientarea.security.services import password_set

    password_set(user=user, password="another long passphrase", via="reset")
    assert not _logged_in(stolen)
    assert TrackedSession.objects.get().end_reason == "password"


def test_revoke_access_ends_the_users_sessions_on_that_account(
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    """ASVS 7.4.2: the owner's Revoke Access ends the revoked user's sessions on the
    account at once; their access to other accounts is untouched."""
    membership = member_factory("tickets")
    Membership.objects.create(account=other_account, user=membership.user, permissions=["tickets"])
    client = Client()
    client.post("/login/", {"username": membership.user.email, "password": TEST_PASSWORD})
    client.post(reverse("accounts:select_account"), {"account": account.pk})
    assert client.get(reverse("core:dashboard")).status_code == 200
    assert TrackedSession.objects.get().account_id == account.pk
    membership_revoke(membership=membership, actor=account.owner)
    assert TrackedSession.objects.get().account_id is None
    assert AuditEvent.objects.filter(
        action="session.account_access_ended", account=account
    ).exists()
    response = client.get(reverse("core:dashboard"))
    assert response["Location"] == reverse("accounts:access_removed")
    assert client.session.get("current_account_id") is None
    client.post(reverse("accounts:select_account"), {"account": other_account.pk})
    assert client.get(reverse("core:dashboard")).status_code == 200
