"""URL reversal remembered per process.

``reverse`` walks the URL patterns on every call; a page reverses about thirty URLs (the
menu alone about twenty), the same ones on every request. What a name reverses to
depends only on the URL configuration, the script prefix, the current application (for
namespaced names such as the back office's) and the arguments, never on who asks, so the
answer is kept per process for those inputs and nothing else. Only plain ``int`` and
``str`` arguments are remembered (a model instance's ``str()`` could differ between two
instances of one row); anything else is reversed every time, as ``reverse`` does.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.urls import get_script_prefix, get_urlconf, reverse

_CACHEABLE = (int, str)


@lru_cache(maxsize=8192)
def _reverse(
    key: tuple[Any, ...],
    name: str,
    args: tuple[int | str, ...],
    kwargs: tuple[tuple[str, int | str], ...],
    current_app: str | None,
) -> str:
    return reverse(name, args=args, kwargs=dict(kwargs), current_app=current_app)


def reverse_cached(
    name: str,
    args: list[Any] | tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    current_app: str | None = None,
) -> str:
    """``reverse(name, args=args, kwargs=kwargs, current_app=current_app)``, remembered."""
    kwargs = kwargs or {}
    if not all(type(v) in _CACHEABLE for v in (*args, *kwargs.values())):
        return reverse(name, args=args, kwargs=kwargs, current_app=current_app)
    # The inputs reverse() reads besides its arguments: the URL configuration (the
    # setting, or one set for this thread) and the script prefix of this request.
    key = (settings.ROOT_URLCONF, get_urlconf(), get_script_prefix())
    items = tuple(sorted(kwargs.items())) if kwargs else ()
    return _reverse(key, name, tuple(args), items, current_app)


@receiver(setting_changed)
def _forget_on_urlconf_change(*, setting: str, **kwargs: Any) -> None:
    # Tests that swap URL patterns (override_settings) must never see old answers; the
    # key has ROOT_URLCONF already, and a test may change the patterns behind one name.
    if setting == "ROOT_URLCONF":
        _reverse.cache_clear()
