"""Nothing secret in any log (ASVS 16.2.5), from the attacker's side: someone who can read
the logs (an operator, a log shipper, a leaked backup) learns no invitation, reset,
email-change or contact-confirmation token, and nobody finds one in an address bar.

Every record is captured as it is made, at DEBUG, by a plain handler (no filter of its
own) on the root logger and on ``django.server``; SQL is logged too; and every request
also goes through runserver's access-log code (``WSGIRequestHandler.log_message``), as
``make run`` does. The real servers (runserver, gunicorn) are started in
``test_server_logs.py``."""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core.servers.basehttp import WSGIRequestHandler
from django.db import connection
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account, Contact, Membership, User
from clientarea.accounts.services import contact_create, invitation_create
from clientarea.accounts.tests.factories import TEST_PASSWORD, UserFactory
from clientarea.accounts.tests.helpers import confirm_recently
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import outbox_deliver_due
from clientarea.security import headers
from clientarea.security.logfilters import (
    SECRET_PATH_PREFIXES,
    RedactSecretsFilter,
    redact,
)

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "an-unusual-and-long-passphrase-7"


# --- what reaches the logs ---------------------------------------------------------------


def _runserver_access_log(request_line: str, status: int) -> None:
    """Log one request exactly as ``manage.py runserver`` does after answering it."""
    handler = WSGIRequestHandler.__new__(WSGIRequestHandler)
    handler.request = None  # the socket; only passed along as the record's `request`
    handler.requestline = request_line
    handler.log_request(status, "-")


class AccessLoggedClient(Client):
    """A test client whose every request also appears in runserver's access log."""

    def request(self, **request: Any) -> Any:
        response = super().request(**request)
        query = request.get("QUERY_STRING")
        line = f"{request['REQUEST_METHOD']} {request['PATH_INFO']}{'?' + query if query else ''}"
        _runserver_access_log(f"{line} HTTP/1.1", response.status_code)
        return response


@pytest.fixture
def all_logs() -> Iterator[list[str]]:
    """Every log record of every logger, at DEBUG, formatted with its traceback, as any
    handler would see it (a handler without the filter: a test's, a log shipper's)."""
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    capture = Capture(level=logging.DEBUG)
    capture.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger(), logging.getLogger("django.server")]
    loggers += [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    levels = {lg: lg.level for lg in loggers}
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    for lg in loggers[:2]:
        lg.handlers.insert(0, capture)  # first: it sees each record before any filter
    connection.force_debug_cursor = True  # SQL with its parameters, as DEBUG logs it
    try:
        yield lines
    finally:
        connection.force_debug_cursor = False
        for lg in loggers[:2]:
            lg.removeHandler(capture)
        for lg, level in levels.items():
            lg.setLevel(level)


# --- one journey per kind of link: (open the link, use it, replay it) --------------------


def _emailed_path(to: str, prefix: str) -> str:
    body = OutboxEmail.objects.filter(to_email=to).latest("pk").body_text
    match = re.search(r"https?://[^/\s]+(" + re.escape(prefix) + r"\S+)", body)
    assert match, body
    return match.group(1)


def _secret_of(path: str, prefix: str) -> str:
    """The token part of a link (for a reset link: after the user id)."""
    return path.removeprefix(prefix).strip("/").split("/")[-1]


def _invitation(account: Account) -> tuple[str, Callable[[Client], Any]]:
    invitation_create(
        account=account, actor=account.owner, email="nia@example.com", permission_codes=["invoices"]
    )
    path = _emailed_path("nia@example.com", "/invitation/")

    def use(client: Client) -> Any:
        data = {"first_name": "Nia", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
        return client.post(reverse("accounts:invitation_page"), data)

    return path, use


def _password_reset(account: Account) -> tuple[str, Callable[[Client], Any]]:
    UserFactory(email="reset@example.com")
    Client().post(reverse("accounts:password_reset"), {"email": "reset@example.com"})
    path = _emailed_path("reset@example.com", "/password-reset/")

    def use(client: Client) -> Any:
        data = {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
        uid = path.removeprefix("/password-reset/").split("/")[0]
        return client.post(f"/password-reset/{uid}/set-password/", data)

    return path, use


def _email_change(account: Account) -> tuple[str, Callable[[Client], Any]]:
    client = Client()
    client.force_login(account.owner)
    confirm_recently(client)
    client.post(reverse("security:email_change"), {"email": "moved@example.com"})
    path = _emailed_path("moved@example.com", "/security/email/confirm/")
    return path, lambda c: c.post(reverse("security:email_change_confirm_page"))


def _contact_confirmation(account: Account) -> tuple[str, Callable[[Client], Any]]:
    contact_create(
        account=account,
        actor=account.owner,
        data={"name": "Bea Billing", "email": "bea@example.com", "email_kinds": ["general"]},
    )
    path = _emailed_path("bea@example.com", "/contacts/confirm/")

    def use(client: Client) -> Any:
        response = client.post(reverse("accounts:contact_confirm"))
        assert Contact.objects.get(email="bea@example.com").confirmed_at is not None
        return response

    return path, use


LINKS: dict[str, Callable[[Account], tuple[str, Callable[[Client], Any]]]] = {
    "invitation": _invitation,
    "password reset": _password_reset,
    "email change": _email_change,
    "contact confirmation": _contact_confirmation,
}


@pytest.mark.parametrize("kind", list(LINKS))
def test_no_token_in_any_log_or_any_later_url(
    kind: str, account: Account, all_logs: list[str]
) -> None:
    path, use = LINKS[kind](account)
    prefix = next(p for p in SECRET_PATH_PREFIXES if path.startswith(p))
    token = _secret_of(path, prefix)
    assert len(token) >= 20, path

    browser = AccessLoggedClient()
    opened = browser.get(path, follow=True)
    # The token leaves the address bar with the first redirect (a reset link that is
    # valid goes to .../set-password/), and the page it lands on does not repeat it.
    assert len(opened.redirect_chain) == 1, opened.redirect_chain
    later_urls = [url for url, _ in opened.redirect_chain] + [opened.request["PATH_INFO"]]
    assert opened.status_code == 200
    assert opened["Referrer-Policy"] == headers.TOKEN_PAGE_REFERRER_POLICY
    assert "no-store" in opened["Cache-Control"]
    assert token not in opened.content.decode()

    used = use(browser)
    assert used.status_code in (200, 302), used.content.decode()[:500]
    if used.status_code == 302:
        later_urls.append(used["Location"])
    # The link is single-use: replayed, it is refused (an unusable reset link shows
    # Django's "no longer works" page at its own, dead, URL).
    replayer = AccessLoggedClient()
    later_urls += [url for url, _ in replayer.get(path, follow=True).redirect_chain]
    refused = use(replayer)
    assert refused.status_code >= 400 or "no longer works" in refused.content.decode()
    # A mistyped link and a token in a query string are logged too (4xx warnings).
    AccessLoggedClient().get(f"{prefix}{token}x/", follow=True)
    AccessLoggedClient().get(f"/no-such-page/?token={token}")
    outbox_deliver_due()  # the worker sends the email that held the link

    assert all(token not in url for url in later_urls), later_urls
    logs = "\n".join(all_logs)
    assert "django.server" in logs and "[redacted]" in logs  # the access log was captured
    assert "django.request WARNING" in logs and "SELECT" in logs
    assert token not in logs


def test_the_reset_form_is_posted_to_a_url_without_the_token(client: Client) -> None:
    """Django's own pattern, which the invitation and email-change links now follow."""
    UserFactory(email="reset@example.com")
    client.post(reverse("accounts:password_reset"), {"email": "reset@example.com"})
    path = _emailed_path("reset@example.com", "/password-reset/")
    token = _secret_of(path, "/password-reset/")
    form_url = client.get(path)["Location"]
    assert token not in form_url and form_url.endswith("/set-password/")
    page = client.get(form_url).content.decode()
    assert token not in page and 'method="post">' in page and "action=" not in page
    done = client.post(form_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done["Location"] == reverse("accounts:password_reset_complete")
    assert User.objects.get(email="reset@example.com").check_password(NEW_PASSWORD)


def test_a_known_user_logs_in_from_the_invitation_page_and_the_token_stays_out_of_the_login_url(
    account: Account, all_logs: list[str]
) -> None:
    person: User = UserFactory(email="dev@example.com")
    invitation_create(
        account=account, actor=account.owner, email=person.email, permission_codes=["tickets"]
    )
    path = _emailed_path(person.email, "/invitation/")
    token = _secret_of(path, "/invitation/")
    browser = AccessLoggedClient()
    page = browser.get(path, follow=True).content.decode()
    login_link = re.search(r'href="(/login/\?next=[^"]+)"', page)
    assert login_link and token not in login_link.group(1)
    assert token not in page
    assert not Membership.objects.filter(account=account, user=person).exists()
    login_url = html.unescape(login_link.group(1))
    credentials = {"username": person.email, "password": TEST_PASSWORD}
    back = browser.post(login_url, credentials)
    assert back["Location"] == reverse("accounts:invitation_page")
    assert browser.post(back["Location"]).status_code == 302
    assert Membership.objects.filter(account=account, user=person).exists()
    assert token not in "\n".join(all_logs)


# --- the configuration ---------------------------------------------------------------


def test_every_log_handler_carries_the_redacting_filter() -> None:
    """Django's default handlers (django.server's access log among them) are replaced
    by handlers that redact; no logger keeps one that does not."""
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    unfiltered = [
        (getattr(lg, "name", "?"), type(h).__name__)
        for lg in loggers
        for h in getattr(lg, "handlers", [])
        if not type(h).__module__.startswith("_pytest")
        and not isinstance(h, logging.NullHandler)
        and not any(isinstance(f, RedactSecretsFilter) for f in h.filters)
    ]
    assert unfiltered == []
    assert logging.getLogger("django.server").handlers  # runserver's access log is kept


def test_runserver_access_log_is_redacted_by_the_configured_handler() -> None:
    """The line runserver prints for each request, through the handler the settings
    configure (its stream swapped for a buffer)."""
    import io

    (handler,) = [
        h
        for h in logging.getLogger("django.server").handlers
        if not type(h).__module__.startswith("_pytest")  # pytest's own capture
    ]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    try:
        _runserver_access_log("GET /invitation/AbCdEf0123456789ghIJ/ HTTP/1.1", 302)
        _runserver_access_log("GET /password-reset/MQ/c1b2a3-0123456789abcdef/ HTTP/1.1", 200)
    finally:
        handler.setStream(old)
    out = buffer.getvalue()
    assert '"GET /invitation/[redacted] HTTP/1.1" 302' in out
    assert '"GET /password-reset/[redacted] HTTP/1.1" 200' in out
    assert "AbCdEf0123456789ghIJ" not in out and "0123456789abcdef" not in out


def test_one_list_of_token_paths_for_logs_and_headers() -> None:
    assert headers.NO_REFERRER_PREFIXES is SECRET_PATH_PREFIXES
    assert "/contacts/confirm/" in SECRET_PATH_PREFIXES
    for prefix in SECRET_PATH_PREFIXES:
        assert redact(f"GET {prefix}Secret-Token_123/ HTTP/1.1") == (
            f"GET {prefix}[redacted] HTTP/1.1"
        )


@pytest.mark.parametrize(
    "line, expected",
    [
        ("GET /invitation/accept/ HTTP/1.1", "GET /invitation/accept/ HTTP/1.1"),
        ("GET /password-reset/sent/", "GET /password-reset/sent/"),
        ("GET /password-reset/done/", "GET /password-reset/done/"),
        ("Not Found: /contacts/confirm/", "Not Found: /contacts/confirm/"),
        ("GET /security/email/confirm/eyJ1Ijo:1t2:abc/", "GET /security/email/confirm/[redacted]"),
        # A token path's query string goes too, whatever it holds.
        ('"GET /invitation/tok?x=1 HTTP/1.1"', '"GET /invitation/[redacted]?[redacted] HTTP/1.1"'),
        ("GET /billing/sandbox/tokens/?card=visa HTTP/1.1",
         "GET /billing/sandbox/tokens/?[redacted] HTTP/1.1"),
        ("/login/?next=%2Finvitation%2FSecretTok%2F&a=1",
         "/login/?next=%2Finvitation%2F[redacted]&a=1"),
        ("/login/?next=%2finvitation%2fSecretTok%2f", "/login/?next=%2finvitation%2f[redacted]"),
        ("GET /verify/?token=SecretTok&page=2", "GET /verify/?token=[redacted]&page=2"),
        ("GET /cb/?code=abc;reset_token=def", "GET /cb/?code=[redacted];reset_token=[redacted]"),
        ("token=SecretTok&next=/", "token=[redacted]&next=/"),
        ("https://clients.example.com/invitation/Tok/", "https://clients.example.com/invitation/[redacted]"),
        ("GET /billing/invoices/?page=2 HTTP/1.1", "GET /billing/invoices/?page=2 HTTP/1.1"),
    ],
)  # fmt: skip
def test_redaction(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_a_traceback_that_names_a_token_path_is_redacted(all_logs: list[str]) -> None:
    try:
        raise ValueError("cannot handle /invitation/TracebackToken123456/")
    except ValueError:
        logging.getLogger("clientarea.test").exception("failed on %s", "/invitation/Tok98765x/")
    logs = "\n".join(all_logs)
    assert "ValueError: cannot handle /invitation/[redacted]" in logs
    assert "TracebackToken123456" not in logs and "Tok98765x" not in logs
