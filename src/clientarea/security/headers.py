"""Security headers (ASVS 3.4.x, 14.3.2, 8.2.1): a strict Content-Security-Policy on every
response, ``Referrer-Policy: strict-origin`` on pages whose URL carries a token,
``Cache-Control: no-store`` on everything a logged-in person is shown, and the
``no_store`` decorator for pages that show secrets.

No-store covers every response that may carry account data, so that after logging out,
or after the owner revokes someone's access, neither Back nor a shared proxy can show a
page again: any response to a request that is authenticated once the view has run (the
response to the login that just succeeded included), any response to a request that came
with a session (the logout response, an expired session's redirect), the back office, and
the token and login pages. Static files (whitenoise answers them before the session is
read) and pages shown to anonymous visitors stay cacheable. Logging out, and being told
one's access was removed, also send ``Clear-Site-Data: "cache"``, so the browser drops
whatever it kept of the site's pages.

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
from django.utils.cache import add_never_cache_headers, patch_vary_headers

from .logfilters import SECRET_PATH_PREFIXES

V = TypeVar("V", bound=Callable[..., HttpResponse])

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Django's admin (staff only) still sets a few style="" attributes.
ADMIN_CSP = DEFAULT_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
TOKEN_PAGE_REFERRER_POLICY = "strict-origin"
# The pages whose links carry a token: one list, shared with the log redaction.
NO_REFERRER_PREFIXES = SECRET_PATH_PREFIXES
# Views whose response tells the browser to forget the pages it cached of this site.
CLEAR_CACHE_VIEWS = frozenset({"accounts:logout", "accounts:access_removed"})


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
        if (
            admin
            or path.startswith(NO_REFERRER_PREFIXES)
            or path.startswith("/login/")
            or carries_account_data(request)
        ):
            add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private
            patch_vary_headers(response, ("Cookie",))
        match = getattr(request, "resolver_match", None)
        if match is not None and match.view_name in CLEAR_CACHE_VIEWS:
            response.headers["Clear-Site-Data"] = '"cache"'
        return response


def carries_account_data(request: HttpRequest) -> bool:
    """May this response show something of a logged-in person? Asked after the view ran,
    so the login that just authenticated counts, and the logout that just ended the
    session counts through its cookie."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return True
    # The request came through the session middleware with a session cookie: the
    # session of someone who was logged in (logout just ended it, or it expired).
    return hasattr(request, "session") and settings.SESSION_COOKIE_NAME in request.COOKIES
