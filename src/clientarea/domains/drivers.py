"""Registrar drivers: how the client area talks to the registrar behind a domain.

Views and services only call ``registrar_driver()``; a real registrar (EPP, an API
reseller) is a class with the methods of ``RegistrarDriver`` named by the
``DOMAINS_REGISTRAR_DRIVER`` setting (a dotted path). No view changes to add one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from django.conf import settings
from django.utils import timezone

from clientarea.core.drivers import load_driver

if TYPE_CHECKING:
    from .models import Domain

logger = logging.getLogger(__name__)


class RegistrarError(Exception):
    """The registrar refused or failed an operation; the message is shown to the user."""


@runtime_checkable
class RegistrarDriver(Protocol):
    """What the client area needs from a registrar. Names are ASCII (punycode)."""

    name: str

    def set_nameservers(self, domain: Domain, nameservers: list[str]) -> None: ...

    def set_registrar_lock(self, domain: Domain, locked: bool) -> None: ...

    def set_auto_renew(self, domain: Domain, enabled: bool) -> None: ...


@dataclass(frozen=True)
class RegistrarChange:
    domain: str
    operation: str
    value: Any
    changed_at: datetime


class LocalRegistrarDriver:
    """A working stand-in for a registrar: it accepts every change and records it, so
    the client area runs end to end without a registrar account."""

    name = "local"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The last changes, for tests and a look in a shell; bounded in a long-lived process.
        self.changes: deque[RegistrarChange] = deque(maxlen=1000)

    def _record(self, domain: Domain, operation: str, value: Any) -> None:
        with self._lock:
            self.changes.append(RegistrarChange(domain.name, operation, value, timezone.now()))
        logger.info("Local registrar: %s %s = %s", domain.name, operation, value)

    def set_nameservers(self, domain: Domain, nameservers: list[str]) -> None:
        self._record(domain, "nameservers", list(nameservers))

    def set_registrar_lock(self, domain: Domain, locked: bool) -> None:
        self._record(domain, "registrar_lock", locked)

    def set_auto_renew(self, domain: Domain, enabled: bool) -> None:
        self._record(domain, "auto_renew", enabled)


def registrar_driver() -> RegistrarDriver:
    """The configured driver (one instance per process and dotted path)."""
    return load_driver(settings.DOMAINS_REGISTRAR_DRIVER, RegistrarDriver)
