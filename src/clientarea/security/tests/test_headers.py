"""Headers and cookies (ASVS 3.3.x, 3.4.x, 14.3.2)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory

from clientarea.accounts.tests.factories import UserFactory
from clientarea.security.headers import no_store

pytestmark = pytest.mark.django_db
SRC = Path(__file__).resolve().parents[3]


def test_every_page_has_a_strict_content_security_policy(client: Client) -> None:
    """ASVS 3.4.3: CSP without inline scripts or styles."""
    csp = client.get("/login/")["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp


@pytest.mark.parametrize(
    "path", ["/password-reset/", "/password-reset/MQ/abc-def/", "/invitation/some-token/"]
)
def test_token_pages_send_no_referrer(client: Client, path: str) -> None:
    """ASVS 14.3.2 / 3.4.5: a token in the URL never leaks through the Referer header (only
    the origin is sent; ``no-referrer`` would make browsers send ``Origin: null`` with the
    page's own form, which the CSRF check refuses)."""
    assert client.get(path, follow=False)["Referrer-Policy"] == "strict-origin"


def test_other_pages_keep_same_origin_referrers(client: Client) -> None:
    assert client.get("/login/")["Referrer-Policy"] == "same-origin"


def test_no_store_decorator_for_pages_showing_secrets() -> None:
    """ASVS 14.3.2: pages showing secrets are not cached anywhere."""

    @no_store
    def secret_page(request: HttpRequest) -> HttpResponse:
        return HttpResponse("hunter2")

    response = secret_page(RequestFactory().get("/"))
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_the_security_page_menu_entry(login_client: Callable[..., Client]) -> None:
    page = login_client(UserFactory()).get("/profile/").content.decode()
    assert '<a href="/security/">Security</a>' in page


def test_production_cookies_are_secure_host_only_and_httponly() -> None:
    """ASVS 3.3.1-3.3.4: Secure, HttpOnly, SameSite, __Host- prefix in production."""
    text = (SRC / "config" / "settings" / "production.py").read_text()
    for line in (
        "SESSION_COOKIE_SECURE = True",
        "CSRF_COOKIE_SECURE = True",
        'SESSION_COOKIE_NAME = "__Host-sessionid"',
        'CSRF_COOKIE_NAME = "__Host-csrftoken"',
        'SESSION_COOKIE_SAMESITE = "Lax"',
        "SECURE_HSTS_SECONDS",
    ):
        assert line in text


def test_security_templates_have_no_inline_script_or_style() -> None:
    """ASVS 3.4.3: our templates work under the strict CSP."""
    offenders = []
    for path in (SRC / "clientarea" / "security" / "templates").rglob("*.html"):
        text = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)", text) or re.search(r"\sstyle=", text):
            offenders.append(path.name)
    for path in (SRC / "templates").rglob("*.html"):
        text = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)", text) or re.search(r"\sstyle=", text):
            offenders.append(path.name)
    assert offenders == []


def test_no_store_is_decided_after_the_view_ran() -> None:
    """The response of a view that logs someone in (the request was anonymous when it
    arrived) is never stored; an anonymous request without a session stays cacheable."""
    from django.contrib.auth.models import AnonymousUser

    from clientarea.security.headers import SecurityHeadersMiddleware

    user = UserFactory()

    def logs_in(request: HttpRequest) -> HttpResponse:
        request.user = user
        return HttpResponse("welcome")

    def stays_anonymous(request: HttpRequest) -> HttpResponse:
        return HttpResponse("hello")

    request = RequestFactory().get("/somewhere/")
    request.user = AnonymousUser()
    response = SecurityHeadersMiddleware(logs_in)(request)
    assert "no-store" in response["Cache-Control"] and response["Vary"] == "Cookie"
    request = RequestFactory().get("/somewhere/")
    request.user = AnonymousUser()
    assert not SecurityHeadersMiddleware(stays_anonymous)(request).has_header("Cache-Control")
