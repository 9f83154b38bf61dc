"""Re-authentication: "confirm your password" before sensitive actions.

A fresh login or a confirmed password is remembered in the session for a few minutes
(``REAUTH_WINDOW_SECONDS``). Views decorated with ``recent_auth_required`` send anyone
outside that window to the confirmation page first, so a session left open on a shared
computer cannot reveal a product password or invite people.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

SESSION_KEY = "reauth_at"
V = TypeVar("V", bound=Callable[..., HttpResponse])


def window_seconds() -> int:
    return int(getattr(settings, "REAUTH_WINDOW_SECONDS", 300))


def mark_recent_auth(request: HttpRequest) -> None:
    request.session[SESSION_KEY] = int(time.time())


def has_recent_auth(request: HttpRequest) -> bool:
    stamp = request.session.get(SESSION_KEY)
    return isinstance(stamp, int) and 0 <= time.time() - stamp <= window_seconds()


def recent_auth_required(view: V) -> V:
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not has_recent_auth(request):
            # A POST is not replayed after confirming: the user submits the form again,
            # now knowingly. GETs come back to where they were.
            target = request.get_full_path() if request.method == "GET" else _referer_path(request)
            query = urlencode({"next": target})
            return redirect(f"{reverse('accounts:confirm_password')}?{query}")
        return view(request, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _referer_path(request: HttpRequest) -> str:
    """Where a refused POST came from: the page with the form (a POST-only URL cannot be
    opened with the GET that follows "Confirm your password")."""
    referer = request.META.get("HTTP_REFERER", "")
    if referer and url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parsed = urlsplit(referer)
        return parsed.path + (f"?{parsed.query}" if parsed.query else "")
    return "/"


@receiver(user_logged_in)
def _login_counts_as_recent_auth(sender: Any, request: HttpRequest | None, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        mark_recent_auth(request)
