from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from clientarea.core.outside import (
    OutsideRefused,
    OutsideUnavailable,
    OutsideUncertain,
    in_transaction,
)
from clientarea.domains import drivers


class RecordingRegistrar:
    """A registrar driver for tests with its own little registry: remembers what it was
    asked, can be told to refuse, to be unreachable or to leave commands unanswered, and
    fails any call made inside a database transaction (the rule of core.outside)."""

    name = "recording"
    calls: list[tuple[str, str, Any]] = []
    refuse: str = ""
    unavailable: bool = False
    uncertain: int = 0  # how many commands are applied but never answered
    lost: bool = False  # commands never reach the registry, and no answer comes
    held: dict[str, drivers.RegistryDomainInfo] = {}

    def _start(self) -> None:
        assert not in_transaction(), "the registry was called inside a transaction"
        if RecordingRegistrar.refuse:
            raise OutsideRefused(RecordingRegistrar.refuse, code="2304")
        if RecordingRegistrar.unavailable:
            raise OutsideUnavailable("The registry did not answer; nothing was changed.")
        if RecordingRegistrar.lost:
            raise OutsideUncertain("The registry did not answer in time.")

    def _end(self) -> None:
        if RecordingRegistrar.uncertain:
            RecordingRegistrar.uncertain -= 1
            raise OutsideUncertain("The registry did not answer in time.")

    def _info(self, domain: Any) -> drivers.RegistryDomainInfo:
        return RecordingRegistrar.held.setdefault(
            domain.name,
            drivers.RegistryDomainInfo(
                name=domain.name,
                statuses=frozenset(
                    {"clientTransferProhibited"} if domain.registrar_lock else {"ok"}
                ),
                nameservers=tuple(domain.nameserver_list),
                expiry_date=domain.expiry_date,
            ),
        )

    def _call(self, domain: Any, operation: str, value: Any, **held: Any) -> None:
        self._start()
        RecordingRegistrar.calls.append((domain.name, operation, value))
        RecordingRegistrar.held[domain.name] = replace(self._info(domain), **held)
        self._end()

    def domain_info(self, domain: Any) -> drivers.RegistryDomainInfo:
        self._start()
        return self._info(domain)

    def set_nameservers(self, domain: Any, nameservers: list[str]) -> None:
        self._call(domain, "nameservers", list(nameservers), nameservers=tuple(nameservers))

    def set_registrar_lock(self, domain: Any, locked: bool) -> None:
        statuses = frozenset({"clientTransferProhibited"} if locked else {"ok"})
        self._call(domain, "registrar_lock", locked, statuses=statuses)

    def renew(self, domain: Any, years: int, current_expiry: date) -> date:
        if self._info(domain).expiry_date != current_expiry:
            raise OutsideRefused("The current expiry date does not match.", code="2306")
        new_expiry = drivers.add_years(current_expiry, years)
        self._call(domain, "renew", years, expiry_date=new_expiry)
        return new_expiry

    @classmethod
    def reset(cls) -> None:
        cls.calls = []
        cls.refuse = ""
        cls.unavailable = False
        cls.uncertain = 0
        cls.lost = False
        cls.held = {}


@pytest.fixture
def registrar(settings: Any) -> Iterator[type[RecordingRegistrar]]:
    from django.core.cache import cache

    cache.clear()  # the registry's view is cached per domain id
    RecordingRegistrar.reset()
    settings.DOMAINS_REGISTRAR_DRIVER = "clientarea.domains.tests.conftest.RecordingRegistrar"
    yield RecordingRegistrar
    RecordingRegistrar.reset()
