"""The local mail viewer: demo mode only, staff only; a sent invitation opens in one click
from it; its copies are kept for a day at most; no token reaches any log; without demo
mode it does not exist."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account
from clientarea.accounts.services import invitation_create
from clientarea.accounts.tests.factories import UserFactory
from clientarea.notifications import demo_mail
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import outbox_deliver_due

pytestmark = pytest.mark.django_db

BACKEND = "clientarea.notifications.demo_mail.DemoMailBackend"
LINK = re.compile(r"https?://[^\s\"<]+/invitation/(?P<token>[A-Za-z0-9_\-]+)/")


@pytest.fixture
def demo(settings: Any, tmp_path: Path) -> Path:
    settings.DEMO_MODE = True
    settings.EMAIL_BACKEND = BACKEND
    settings.DEMO_MAIL_DIR = tmp_path / "demo-mail"
    return settings.DEMO_MAIL_DIR


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def every_log_record() -> Iterator[list[str]]:
    """Every log record made, at DEBUG, by a plain handler on the root logger."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage() + (record.exc_text or ""))

    handler = Keep(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield seen
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _invite(account: Account, email: str = "newbie@example.org") -> OutboxEmail:
    invitation_create(
        account=account, actor=account.owner, email=email, permission_codes=["invoices"]
    )
    return OutboxEmail.objects.get(to_email=email)


def test_a_sent_invitation_opens_in_one_click_from_the_viewer(
    demo: Path,
    staff: Client,
    account: Account,
    every_log_record: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    row = _invite(account)
    assert outbox_deliver_due()["sent"] >= 1
    row.refresh_from_db()
    assert "/invitation/" not in row.body_text  # the outbox keeps no token, as before
    terminal = capsys.readouterr().out
    assert "Read it in the local mail viewer" in terminal and "/invitation/" not in terminal

    listing = staff.get(reverse("admin:notifications_demo_mail"))
    assert listing.status_code == 200
    page = listing.content.decode()
    for shown in (row.subject, row.to_email, "Personal", "Sent"):
        assert shown in page, shown
    assert LINK.search(page) is None
    detail = staff.get(reverse("admin:notifications_demo_mail_detail", args=[row.pk]))
    assert detail.status_code == 200
    assert "no-store" in detail["Cache-Control"]
    body = detail.content.decode()
    link = LINK.search(body)
    assert link is not None and f'<a href="{link.group(0)}"' in body  # clickable
    # One click: the invitation's page, as the newcomer would see it from the email.
    newcomer = Client()
    path = link.group(0).split("://", 1)[1].split("/", 1)[1]
    response = newcomer.get("/" + path, follow=True)
    assert response.status_code == 200
    assert "newbie@example.org" in response.content.decode()
    # No log record (requests, SQL, the worker) holds the token.
    token = link.group("token")
    assert not [r for r in every_log_record if token in r]


def test_copies_are_kept_a_day_at_most(demo: Path, staff: Client, account: Account) -> None:
    row = _invite(account)
    outbox_deliver_due()
    assert demo_mail.demo_mail_for_outbox(row.pk) is not None
    assert demo_mail.demo_mail_purge(now=timezone.now() + timedelta(hours=25)) == 1
    assert demo_mail.demo_mail_for_outbox(row.pk) is None
    body = staff.get(reverse("admin:notifications_demo_mail_detail", args=[row.pk]))
    assert LINK.search(body.content.decode()) is None
    assert "link removed after sending" in body.content.decode()


def test_a_queued_email_shows_no_link_before_it_is_sent(
    demo: Path, staff: Client, account: Account
) -> None:
    row = _invite(account)
    page = staff.get(reverse("admin:notifications_demo_mail_detail", args=[row.pk]))
    assert LINK.search(page.content.decode()) is None
    assert "holds a one-time link" in page.content.decode()


def test_customers_cannot_open_the_viewer(demo: Path, account: Account) -> None:
    row = _invite(account)
    outbox_deliver_due()
    customer = Client()
    customer.force_login(account.owner)
    for url in (
        reverse("admin:notifications_demo_mail"),
        reverse("admin:notifications_demo_mail_detail", args=[row.pk]),
    ):
        response = customer.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert Client().get(reverse("admin:notifications_demo_mail")).status_code == 302


def test_without_demo_mode_the_viewer_does_not_exist(
    settings: Any, tmp_path: Path, staff: Client, account: Account
) -> None:
    settings.DEMO_MODE = False
    settings.DEMO_MAIL_DIR = tmp_path / "demo-mail"
    row = _invite(account)
    outbox_deliver_due()  # the test backend
    assert staff.get(reverse("admin:notifications_demo_mail")).status_code == 404
    detail = staff.get(reverse("admin:notifications_demo_mail_detail", args=[row.pk]))
    assert detail.status_code == 404
    assert "Local mail viewer" not in staff.get(reverse("admin:index")).content.decode()
    # The backend keeps nothing and refuses to run outside demo mode.
    message = mail.EmailMessage("Hi", "Text", to=["x@example.org"])
    assert demo_mail.demo_mail_keep(message) is None
    with pytest.raises(RuntimeError):
        demo_mail.DemoMailBackend(stream=io.StringIO()).send_messages([message])
    assert not (tmp_path / "demo-mail").exists()


def test_the_back_office_links_to_the_viewer_in_demo_mode(demo: Path, staff: Client) -> None:
    page = staff.get(reverse("admin:index")).content.decode()
    assert reverse("admin:notifications_demo_mail") in page


def test_the_demo_backend_outside_demo_mode_does_not_start(settings: Any) -> None:
    settings.EMAIL_BACKEND = BACKEND
    settings.DEMO_MODE = False
    assert [e.id for e in demo_mail.check_demo_backend()] == ["notifications.E001"]
    settings.DEMO_MODE = True
    assert demo_mail.check_demo_backend() == []
