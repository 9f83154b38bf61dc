from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.test import Client

from clientarea.accounts.models import Account, User
from clientarea.accounts.reauth import SESSION_KEY
from clientarea.core.outside import (
    OutsideRefused,
    OutsideUnavailable,
    OutsideUncertain,
    in_transaction,
)
from clientarea.hosting import drivers

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def encryption_keys(settings: Any) -> list[str]:
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    return settings.FIELD_ENCRYPTION_KEYS


class RecordingPanel:
    """A panel driver for tests: remembers what it was asked, can be told to refuse, to be
    unreachable or to leave a call unanswered, and fails any call made inside a database
    transaction (the rule of core.outside)."""

    name = "recording"
    calls: list[tuple[int, str]] = []
    refuse: str = ""
    unavailable: bool = False
    # How many calls go unanswered (after applying the change, as a timeout would).
    uncertain: int = 0
    suspended: dict[int, str] = {}
    sessions: int = 0

    def _answer(self) -> None:
        assert not in_transaction(), "the panel was called inside a transaction"
        if RecordingPanel.refuse:
            raise OutsideRefused(RecordingPanel.refuse)
        if RecordingPanel.unavailable:
            raise OutsideUnavailable("The control panel did not answer; nothing was changed.")

    def _maybe_unanswered(self) -> None:
        if RecordingPanel.uncertain:
            RecordingPanel.uncertain -= 1
            raise OutsideUncertain("The control panel did not answer in time.")

    def change_password(self, service: Any, new_password: str) -> None:
        self._answer()
        RecordingPanel.calls.append((service.pk, new_password))
        self._maybe_unanswered()

    def create_login_session(self, service: Any) -> str:
        self._answer()
        RecordingPanel.sessions += 1
        return (
            f"https://panel.test:2083/cpsess{RecordingPanel.sessions:010d}/login/?session=one-time"
        )

    def account_summary(self, service: Any) -> drivers.AccountSummary:
        self._answer()
        reason = RecordingPanel.suspended.get(service.pk)
        return drivers.AccountSummary(
            status="suspended" if reason is not None else "active",
            suspended_reason=reason or "",
            disk_used_mb=512.0,
            disk_limit_mb=2048.0,
            bandwidth_used_mb=3000.0,
        )

    def suspend(self, service: Any, reason: str) -> None:
        self._answer()
        RecordingPanel.suspended[service.pk] = reason
        self._maybe_unanswered()

    def unsuspend(self, service: Any) -> None:
        self._answer()
        RecordingPanel.suspended.pop(service.pk, None)
        self._maybe_unanswered()

    @classmethod
    def reset(cls) -> None:
        cls.calls = []
        cls.refuse = ""
        cls.unavailable = False
        cls.uncertain = 0
        cls.suspended = {}
        cls.sessions = 0


@pytest.fixture
def panel(settings: Any) -> Iterator[type[RecordingPanel]]:
    RecordingPanel.reset()
    settings.HOSTING_PANEL_DRIVER = "clientarea.hosting.tests.conftest.RecordingPanel"
    yield RecordingPanel
    RecordingPanel.reset()


@pytest.fixture
def fresh_client(login_client: Callable[..., Client]) -> Callable[..., Client]:
    """A logged-in client that has just confirmed its password (recent authentication)."""

    def make(user: User, account: Account, *, csrf: bool = False) -> Client:
        client = login_client(user, account, csrf=csrf)
        session = client.session
        session[SESSION_KEY] = int(time.time())
        session.save()
        return client

    return make
