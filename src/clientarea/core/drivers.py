"""Loading the outside-system drivers (control panel, registrar) named in settings."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


@lru_cache(maxsize=16)
def _instance(path: str) -> object:
    return import_string(path)()


def load_driver(path: str, protocol: type) -> Any:
    """The driver class at dotted `path`, one instance per process, checked against its
    (runtime-checkable) protocol so a wrong setting fails loudly. Typed `Any` because a
    Protocol cannot be passed as a `type[T]`; the callers declare what they return."""
    driver = _instance(path)
    if not isinstance(driver, protocol):
        raise ImproperlyConfigured(f"{path} does not implement {protocol.__name__}")
    return driver
