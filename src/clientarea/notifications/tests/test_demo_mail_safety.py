"""The local mail viewer's copies hold live one-time links: only staff who may see the
outbox read them, the files are this user's alone, and they go once demo mode is off."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account
from clientarea.accounts.services import invitation_create
from clientarea.accounts.tests.factories import UserFactory
from clientarea.notifications import demo_mail
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import outbox_deliver_due

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(settings: Any, tmp_path: Path) -> Path:
    settings.DEMO_MODE = True
    settings.EMAIL_BACKEND = "clientarea.notifications.demo_mail.DemoMailBackend"
    settings.DEMO_MAIL_DIR = tmp_path / "demo-mail"
    return Path(settings.DEMO_MAIL_DIR)


def _invite(account: Account) -> OutboxEmail:
    invitation_create(
        account=account, actor=account.owner, email="n@example.org", permission_codes=["invoices"]
    )
    outbox_deliver_due()
    return OutboxEmail.objects.get(to_email="n@example.org")


def test_staff_without_the_outbox_permission_cannot_read_the_viewer(
    demo: Path, account: Account
) -> None:
    email = _invite(account)
    helpdesk = Client()
    helpdesk.force_login(UserFactory(is_staff=True, is_superuser=False))
    assert helpdesk.get(reverse("admin:notifications_demo_mail")).status_code == 403
    detail = reverse("admin:notifications_demo_mail_detail", args=[email.pk])
    assert helpdesk.get(detail).status_code == 403
    admin = Client()
    admin.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert admin.get(detail).status_code == 200


def test_copies_are_private_and_purged_once_demo_mode_is_off(
    demo: Path, account: Account, settings: Any
) -> None:
    _invite(account)
    files = list(demo.glob("*.json"))
    assert files
    assert stat.S_IMODE(os.stat(demo).st_mode) == 0o700
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    settings.DEMO_MODE = False
    demo_mail.demo_mail_purge()  # as the worker's housekeeping does
    assert list(demo.glob("*.json")) == []
