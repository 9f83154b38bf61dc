from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from clientarea.domains import drivers


class RecordingRegistrar:
    """A registrar driver for tests: remembers what it was asked, can be told to refuse."""

    name = "recording"
    calls: list[tuple[str, str, Any]] = []
    refuse: str = ""

    def _call(self, domain: Any, operation: str, value: Any) -> None:
        if RecordingRegistrar.refuse:
            raise drivers.RegistrarError(RecordingRegistrar.refuse)
        RecordingRegistrar.calls.append((domain.name, operation, value))

    def set_nameservers(self, domain: Any, nameservers: list[str]) -> None:
        self._call(domain, "nameservers", list(nameservers))

    def set_registrar_lock(self, domain: Any, locked: bool) -> None:
        self._call(domain, "registrar_lock", locked)

    def set_auto_renew(self, domain: Any, enabled: bool) -> None:
        self._call(domain, "auto_renew", enabled)


@pytest.fixture
def registrar(settings: Any) -> Iterator[type[RecordingRegistrar]]:
    RecordingRegistrar.calls = []
    RecordingRegistrar.refuse = ""
    settings.DOMAINS_REGISTRAR_DRIVER = "clientarea.domains.tests.conftest.RecordingRegistrar"
    yield RecordingRegistrar
    RecordingRegistrar.calls = []
    RecordingRegistrar.refuse = ""
