"""Security headers (ASVS 3.4.x, 14.3.2): a strict Content-Security-Policy on every
response, ``Referrer-Policy: strict-origin`` on pages whose URL carries a token, and the
``no_store`` decorator for pages that show secrets.

Token pages use ``strict-origin``, not ``no-referrer``: either keeps the token out of every
Referer header (only the site's origin is ever sent), but under ``no-referrer`` browsers
send ``Origin: null`` with the page's own form POST, which Django's CSRF check refuses, so
nobody could accept an invitation, reset a password or confirm an email change."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers

V = TypeVar("V", bound=Callable[..., HttpResponse])

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Django's admin (staff only) still sets a few style="" attributes.
ADMIN_CSP = DEFAULT_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
TOKEN_PAGE_REFERRER_POLICY = "strict-origin"
NO_REFERRER_PREFIXES = (
    "/invite/",
    "/invitation/",
    "/password-reset/",
    "/security/email/confirm/",
)


def no_store(view: V) -> V:
    """Mark a page that shows a secret (a product password, recovery codes, a TOTP key):
    ``Cache-Control: no-store`` so neither the browser nor a proxy keeps a copy."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private
        return response

    return wrapper  # type: ignore[return-value]


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        path = request.path
        admin = path.startswith("/admin/")
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", DEFAULT_CSP)
        if admin:
            policy = getattr(settings, "CONTENT_SECURITY_POLICY_ADMIN", ADMIN_CSP)
        response.headers.setdefault("Content-Security-Policy", policy)
        if path.startswith(NO_REFERRER_PREFIXES):
            response.headers["Referrer-Policy"] = TOKEN_PAGE_REFERRER_POLICY
        if path.startswith(NO_REFERRER_PREFIXES) or path.startswith("/login/"):
            add_never_cache_headers(response)
        return response
