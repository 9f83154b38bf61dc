"""Control-panel drivers: how the client area talks to the panel behind a service.

Views and services only ever call ``panel_driver()``; a real cPanel/Plesk/DirectAdmin
driver is a class with the methods of ``PanelDriver`` named by the
``HOSTING_PANEL_DRIVER`` setting (a dotted path). No view changes to add one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from django.conf import settings
from django.utils import timezone

from clientarea.core.drivers import load_driver

if TYPE_CHECKING:
    from .models import Service

logger = logging.getLogger(__name__)


class PanelError(Exception):
    """The control panel refused or failed an operation; the message is shown to the user."""


@runtime_checkable
class PanelDriver(Protocol):
    """What the client area needs from a control panel."""

    name: str

    def change_password(self, service: Service, new_password: str) -> None:
        """Set the panel account's password; raise PanelError if the panel refuses."""

    def login_url(self, service: Service) -> str:
        """Where the customer logs in to the panel ("" if there is no web login)."""


@dataclass(frozen=True)
class PanelChange:
    service_id: int
    username: str
    changed_at: datetime


class LocalPanelDriver:
    """A working stand-in for a real panel: it accepts every change and records that it
    happened (never the password itself), so the client area runs end to end locally."""

    name = "local"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The last changes, for tests and a look in a shell; bounded in a long-lived process.
        self.changes: deque[PanelChange] = deque(maxlen=1000)

    def change_password(self, service: Service, new_password: str) -> None:
        if not service.username:
            raise PanelError("This service has no control-panel username yet.")
        with self._lock:
            self.changes.append(PanelChange(service.pk, service.username, timezone.now()))
        logger.info(
            "Local panel: password of %s on service %s changed", service.username, service.pk
        )

    def login_url(self, service: Service) -> str:
        return f"https://{service.server_hostname}:2083/" if service.server_hostname else ""


def panel_driver() -> PanelDriver:
    """The configured driver (one instance per process and dotted path)."""
    return load_driver(settings.HOSTING_PANEL_DRIVER, PanelDriver)
