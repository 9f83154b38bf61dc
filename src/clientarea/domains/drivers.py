"""Registrar drivers: how the client area talks to the registrar behind a domain.

Views and services only call ``registrar_driver()``; a real registrar (EPP, an API
reseller) is a class with the methods of ``RegistrarDriver`` named by the
``DOMAINS_REGISTRAR_DRIVER`` setting (a dotted path). No view changes to add one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from django.conf import settings
from django.utils import timezone

from clientarea.core.drivers import load_driver
from clientarea.core.outside import OutsideError, OutsideRefused

if TYPE_CHECKING:
    from .models import Domain

logger = logging.getLogger(__name__)


# A driver raises the outside-call errors of ``core.outside``: OutsideRefused with a clear
# message for the customer (an EPP result code becomes words, its code kept in `.code`),
# OutsideUnavailable when the registry could not be reached (nothing changed),
# OutsideUncertain when a command got no answer (the change stays pending).
RegistrarError = OutsideError

# The EPP status that is the registrar lock (RFC 5731 section 2.3).
TRANSFER_PROHIBITED = "clientTransferProhibited"


@dataclass(frozen=True)
class RegistryDomainInfo:
    """The registry's view of a domain (``domain:info``). Names are lower-case ASCII."""

    name: str
    statuses: frozenset[str]
    nameservers: tuple[str, ...]
    expiry_date: date | None

    @property
    def registrar_lock(self) -> bool:
        return TRANSFER_PROHIBITED in self.statuses

    @property
    def status_list(self) -> list[str]:
        return sorted(self.statuses)


@runtime_checkable
class RegistrarDriver(Protocol):
    """What the client area needs from a registrar. Names are ASCII (punycode). Each
    method is one conversation with the registry; none is made inside a database
    transaction. Auto-renew is a billing setting of ours, not a registry command."""

    name: str

    def domain_info(self, domain: Domain) -> RegistryDomainInfo:
        """What the registry holds for the domain: statuses, nameservers, expiry."""

    def set_nameservers(self, domain: Domain, nameservers: list[str]) -> None:
        """Make the registry's nameservers exactly `nameservers` (adding and removing the
        difference, creating host objects the registry needs). Asking again for the same
        list changes nothing, which is how a pending change is settled."""

    def set_registrar_lock(self, domain: Domain, locked: bool) -> None:
        """Add or remove the clientTransferProhibited status."""

    def renew(self, domain: Domain, years: int, current_expiry: date) -> date:
        """Renew for `years` from `current_expiry` (the registry refuses a stale one, so a
        retried renewal never renews twice). Returns the new expiry date."""


@dataclass(frozen=True)
class RegistrarChange:
    domain: str
    operation: str
    value: Any
    changed_at: datetime


class LocalRegistrarDriver:
    """A working stand-in for a registrar: it keeps its own registry in memory (seeded
    from our records the first time it sees a domain), accepts every change and records
    it, so the client area runs end to end without a registrar account."""

    name = "local"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # The last changes, for tests and a look in a shell; bounded in a long-lived process.
        self.changes: deque[RegistrarChange] = deque(maxlen=1000)
        self.registry: dict[str, RegistryDomainInfo] = {}

    def _record(self, domain: Domain, operation: str, value: Any) -> None:
        with self._lock:
            self.changes.append(RegistrarChange(domain.name, operation, value, timezone.now()))
        logger.info("Local registrar: %s %s = %s", domain.name, operation, value)

    def _held(self, domain: Domain) -> RegistryDomainInfo:
        known = self.registry.get(domain.name)
        if known is None:
            statuses = {"ok"} if not domain.registrar_lock else {TRANSFER_PROHIBITED}
            known = RegistryDomainInfo(
                name=domain.name,
                statuses=frozenset(statuses),
                nameservers=tuple(domain.nameserver_list),
                expiry_date=domain.expiry_date,
            )
            self.registry[domain.name] = known
        return known

    def domain_info(self, domain: Domain) -> RegistryDomainInfo:
        with self._lock:
            return self._held(domain)

    def set_nameservers(self, domain: Domain, nameservers: list[str]) -> None:
        with self._lock:
            held = self._held(domain)
            self.registry[domain.name] = replace(held, nameservers=tuple(nameservers))
        self._record(domain, "nameservers", list(nameservers))

    def set_registrar_lock(self, domain: Domain, locked: bool) -> None:
        with self._lock:
            held = self._held(domain)
            statuses = set(held.statuses) - {"ok", TRANSFER_PROHIBITED}
            statuses |= {TRANSFER_PROHIBITED} if locked else set()
            self.registry[domain.name] = replace(held, statuses=frozenset(statuses or {"ok"}))
        self._record(domain, "registrar_lock", locked)

    def renew(self, domain: Domain, years: int, current_expiry: date) -> date:
        with self._lock:
            held = self._held(domain)
            if held.expiry_date != current_expiry:
                raise OutsideRefused(
                    "The registry holds another expiry date: the domain was not renewed.",
                    code="2306",
                )
            new_expiry = add_years(current_expiry, years)
            self.registry[domain.name] = replace(held, expiry_date=new_expiry)
        self._record(domain, "renew", years)
        return new_expiry


def add_years(day: date, years: int) -> date:
    """`day` moved `years` later; 29 February becomes 28 February in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def registrar_driver() -> RegistrarDriver:
    """The configured driver (one instance per process and dotted path)."""
    return load_driver(settings.DOMAINS_REGISTRAR_DRIVER, RegistrarDriver)
