"""The audit trail records security events; logs never hold tokens or passwords
(ASVS 16.2.5, 16.3.1, 16.3.2)."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import TEST_PASSWORD, UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail
from clientarea.security.logfilters import redact
from clientarea.security.twofactor import totp_secret_base32

from .factories import fresh_code, two_factor_on

pytestmark = pytest.mark.django_db


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything the configured log handlers write, as production would write it."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers = [h for h in root.handlers if isinstance(h, logging.StreamHandler)]
    assert handlers, "the LOGGING setting configures a console handler"
    old = [h.setStream(buffer) for h in handlers]
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.setLevel(old_level)
        for h, stream in zip(handlers, old, strict=True):
            h.setStream(stream)


def test_login_logout_failures_and_refusals_are_audited(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    """ASVS 16.3.1 / 16.3.2: logins, failed logins, session ends, authorization refusals."""
    member = member_factory("tickets")
    client = Client()
    client.post("/login/", {"username": member.user.email, "password": "not-the-password-1"})
    client.post("/login/", {"username": "nobody@example.com", "password": "whatever-it-is-1"})
    client.post("/login/", {"username": member.user.email, "password": TEST_PASSWORD})
    client.post(reverse("accounts:select_account"), {"account": account.pk})
    assert client.get(reverse("accounts:account_profile")).status_code == 403
    client.post(reverse("accounts:logout"))
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", "target_label"))
    assert ("user.login_failed", member.user.email) in actions
    assert ("user.login_failed", "unknown login") in actions
    assert any(a == "user.logged_in" for a, _ in actions)
    assert ("access.refused", "/account/details/") in actions
    assert any(a == "session.ended" for a, _ in actions)
    assert not any(
        "not-the-password" in str(row) or "whatever-it-is" in str(row) for row in actions
    )


def test_redaction_of_token_paths() -> None:
    assert redact("Not Found: /invitation/abc.DEF-123/") == "Not Found: /invitation/[redacted]"
    assert redact("GET /password-reset/MQ/set-password/") == "GET /password-reset/[redacted]"
    assert redact("GET /password-reset/sent/") == "GET /password-reset/sent/"


def test_a_full_journey_leaves_no_token_or_password_in_the_logs(
    captured_logs: io.StringIO, account: Account
) -> None:
    """ASVS 16.2.5: tokens, codes and passwords never appear in the logs."""
    secrets: list[str] = [TEST_PASSWORD]
    user = UserFactory(email="journey@example.com")
    device, codes = two_factor_on(user)
    secrets += [codes[0], codes[0].replace("-", ""), device.key, totp_secret_base32(device)]
    client = Client()
    client.post("/login/", {"username": "journey@example.com", "password": "wrong guess pass 1"})
    secrets.append("wrong guess pass 1")
    client.post("/login/", {"username": "journey@example.com", "password": TEST_PASSWORD})
    code = fresh_code(device)
    client.post("/login/", {"token": "123456" if code != "123456" else "654321"})
    client.post("/login/", {"token": code})
    secrets.append(client.cookies["sessionid"].value)
    client.post(reverse("accounts:logout"))
    # recovery code login
    client.post("/login/", {"username": "journey@example.com", "password": TEST_PASSWORD})
    client.post("/login/", {"token": codes[0]})
    # password reset, with a bad link first (a 4xx Django logs with its path)
    anon = Client()
    anon.post(reverse("accounts:password_reset"), {"email": "journey@example.com"})
    link = re.search(r"https?://\S+", OutboxEmail.objects.latest("pk").body_text)
    assert link
    reset_path = "/" + link.group(0).split("/", 3)[3]
    secrets.append(reset_path.rstrip("/").rsplit("/", 1)[1])
    anon.get(reset_path[:-4] + "zzz/")
    form_url = anon.get(reset_path)["Location"]
    new_password = "a completely new passphrase 9"
    secrets.append(new_password)
    anon.post(form_url, {"new_password1": new_password, "new_password2": new_password})
    # email change with its token, and a tampered token that 400s
    client.post(reverse("security:email_change"), {"email": "renamed@example.com"})
    confirm = re.search(r"https?://\S+", OutboxEmail.objects.latest("pk").body_text)
    assert confirm
    confirm_path = "/" + confirm.group(0).split("/", 3)[3]
    secrets.append(confirm_path.split("/")[-2])
    Client().get(confirm_path[:-6] + "xxxxx/")
    Client().post(confirm_path)
    # an unknown invitation link (404, logged by Django with its path)
    secrets.append("InvitationTokenThatDoesNotExist123")
    Client().get("/invitation/InvitationTokenThatDoesNotExist123/")
    assert TOTPDevice.objects.filter(user=user).exists()

    logs = captured_logs.getvalue()
    assert "Not Found" in logs or "Bad Request" in logs  # the logs did capture requests
    leaked = [s for s in secrets if s and s in logs]
    assert leaked == []
