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
from django.urls import reverse
from django.utils import timezone

from clientarea.core.drivers import load_driver
from clientarea.core.outside import OutsideError, OutsideRefused

if TYPE_CHECKING:
    from .models import Service

logger = logging.getLogger(__name__)


# A driver raises the outside-call errors of ``core.outside``: OutsideRefused with the
# panel's own words (shown to the customer as they are), OutsideUnavailable when the panel
# could not be reached (nothing changed), OutsideUncertain when a request got no answer.
PanelError = OutsideError


@dataclass(frozen=True)
class AccountSummary:
    """The panel's view of a hosting account (sizes in MiB; None: unlimited or unknown)."""

    status: str  # "active" or "suspended", as the panel reports it
    suspended_reason: str = ""
    plan: str = ""
    domain: str = ""
    disk_used_mb: float | None = None
    disk_limit_mb: float | None = None
    bandwidth_used_mb: float | None = None
    bandwidth_limit_mb: float | None = None

    @property
    def suspended(self) -> bool:
        return self.status == "suspended"


@runtime_checkable
class PanelDriver(Protocol):
    """What the client area needs from a control panel (cPanel & WHM today; Plesk and
    DirectAdmin fit the same methods). Each method is one outside call; none is made
    inside a database transaction. The service carries its server (``service.server``) and
    its panel username."""

    name: str

    def change_password(self, service: Service, new_password: str) -> None:
        """Set the panel account's password. Setting the same password twice is harmless,
        which is how a pending change is settled. Raises OutsideRefused with the panel's
        own reason (e.g. its password-strength answer)."""

    def create_login_session(self, service: Service) -> str:
        """A one-time single sign-on URL into the panel for the account's user. It is
        handed to the browser at once and never stored or logged."""

    def account_summary(self, service: Service) -> AccountSummary:
        """Status, plan, disk and bandwidth use of the account on the panel."""

    def suspend(self, service: Service, reason: str) -> None:
        """Suspend the panel account (staff action)."""

    def unsuspend(self, service: Service) -> None:
        """Lift a suspension (staff action)."""


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
        self.suspended: dict[int, str] = {}

    def change_password(self, service: Service, new_password: str) -> None:
        if not service.username:
            raise OutsideRefused("This service has no control-panel username yet.")
        with self._lock:
            self.changes.append(PanelChange(service.pk, service.username, timezone.now()))
        logger.info(
            "Local panel: password of %s on service %s changed", service.username, service.pk
        )

    def create_login_session(self, service: Service) -> str:
        if not service.username:
            raise OutsideRefused("This service has no control-panel username yet.")
        # No panel to log in to: the demo page says what a real panel would open.
        return reverse("hosting:panel_demo", args=[service.pk])

    def account_summary(self, service: Service) -> AccountSummary:
        # Stable made-up figures, so the demo service page shows what a panel reports.
        seed = (service.pk or 0) % 7
        with self._lock:
            suspended = service.pk in self.suspended
        return AccountSummary(
            status="suspended" if suspended else "active",
            suspended_reason=self.suspended.get(service.pk, "") if suspended else "",
            plan=service.product_name,
            domain=service.domain,
            disk_used_mb=float(250 + 180 * seed),
            disk_limit_mb=10240.0,
            bandwidth_used_mb=float(1200 + 900 * seed),
            bandwidth_limit_mb=None,
        )

    def suspend(self, service: Service, reason: str) -> None:
        with self._lock:
            self.suspended[service.pk] = reason

    def unsuspend(self, service: Service) -> None:
        with self._lock:
            self.suspended.pop(service.pk, None)


def panel_driver() -> PanelDriver:
    """The configured driver (one instance per process and dotted path)."""
    return load_driver(settings.HOSTING_PANEL_DRIVER, PanelDriver)
