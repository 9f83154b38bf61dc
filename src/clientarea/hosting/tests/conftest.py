from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.test import Client

from clientarea.accounts.models import Account, User
from clientarea.accounts.reauth import SESSION_KEY
from clientarea.hosting import drivers

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def encryption_keys(settings: Any) -> list[str]:
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    return settings.FIELD_ENCRYPTION_KEYS


class RecordingPanel:
    """A panel driver for tests: remembers what it was asked, can be told to refuse."""

    name = "recording"
    calls: list[tuple[int, str]] = []
    refuse: str = ""

    def change_password(self, service: Any, new_password: str) -> None:
        if RecordingPanel.refuse:
            raise drivers.PanelError(RecordingPanel.refuse)
        RecordingPanel.calls.append((service.pk, new_password))

    def login_url(self, service: Any) -> str:
        return ""


@pytest.fixture
def panel(settings: Any) -> Iterator[type[RecordingPanel]]:
    RecordingPanel.calls = []
    RecordingPanel.refuse = ""
    settings.HOSTING_PANEL_DRIVER = "clientarea.hosting.tests.conftest.RecordingPanel"
    yield RecordingPanel
    RecordingPanel.calls = []
    RecordingPanel.refuse = ""


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
