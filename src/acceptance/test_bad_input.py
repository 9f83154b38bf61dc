"""Bad input on every form: empty, far too long, or the wrong type of value; and control
characters in every one-line field.

For every route that renders a form (GET and POST), the owner (or, for the user's own
pages, the logged-in user; for the page of an emailed link, whoever opened the link) opens
the page, reads its fields from the HTML, and posts junk in all of them. The answer must
be a page or a redirect, never a server error, and nothing may change: no audit event is
written (every state-changing action writes one) and no email is queued, and the person
is shown what is wrong.

Control characters (carriage return, line feed, NUL, escape, the line separator, the
right-to-left override) go into every one-line field (text, email, search, tel and url
inputs) of every form page, the other fields keeping what the page filled in, as a
browser would send them. Never a 500; every table is the same before and after (but the
session and throttling bookkeeping); every one of those fields comes back marked invalid
with its error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

from acceptance.objects import OBJECT_KWARGS, STATIC_KWARGS
from acceptance.test_access_matrix import CSRF
from clientarea.access_table import ROUTES, Route
from clientarea.accounts.middleware import ACCOUNT_PIN_FIELD
from clientarea.accounts.models import Account
from clientarea.accounts.ownership import ownership_transfer_start
from clientarea.accounts.services import contact_create, invitation_create
from clientarea.accounts.tests.factories import AccountFactory
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail
from clientarea.security.services import email_change_request

# Pages that are only a confirmation button: posting them is the action itself.
CONFIRMATION_ROUTES = {
    "accounts:user_revoke",
    "accounts:invitation_cancel",
    "accounts:contact_remove",
    "hosting:password_reveal",
    "hosting:panel_login",
    "accounts:contact_confirm",
    "security:email_change_confirm_page",
}
# The pages' forms. (The API's bodies have their own matrix: Schemathesis' negative and
# positive data checks in api/tests/test_schemathesis.py, and each endpoint's tests.)
FORM_ROUTES = [
    r
    for r in ROUTES
    if "GET" in r.methods
    and "POST" in r.methods
    and not r.is_api
    and r.name not in STATIC_KWARGS
    and r.name not in CONFIRMATION_ROUTES
]
# The login and reset forms answer junk with the same page; their audit of failed
# attempts is tested in the security app, so only "no server error" is checked here.
AUDITS_FAILURES = {"accounts:login", "accounts:confirm_password", "security:password_change"}

JUNK = {
    "empty": "",
    "too long": "x" * 5000,
    "wrong type": "\u0000 not-a-number \ud7ff -1e309",
}
FIELD_NAME = re.compile(r'<(?:input|select|textarea)[^>]*\bname="([^"]+)"', re.I)
# Hidden fields every form carries: the CSRF token and the account the form is for.
INFRASTRUCTURE_FIELDS = {"csrfmiddlewaretoken", ACCOUNT_PIN_FIELD}
ACCOUNT_PIN = re.compile(rf'name="{ACCOUNT_PIN_FIELD}" value="(\d+)"')


def _emailed_link(to_email: str, prefix: str) -> str:
    """The path of the link under ``prefix`` in the last email queued for the address."""
    row = OutboxEmail.objects.filter(to_email=to_email).latest("pk")
    match = re.search(re.escape(prefix) + r"[^/\s]+/", row.body_text)
    assert match is not None, row.body_text
    return match.group(0)


def _invitation_link(account: Account) -> str:
    invitation_create(
        account=account,
        actor=account.owner,
        email="invitee@example.com",
        permission_codes=["tickets"],
    )
    return _emailed_link("invitee@example.com", "/invitation/")


def _contact_link(account: Account) -> str:
    data = {"name": "Bea", "email": "bea@example.com", "email_kinds": ["invoice"]}
    contact_create(account=account, actor=account.owner, data=data)
    return _emailed_link("bea@example.com", "/contacts/confirm/")


def _email_change_link(account: Account) -> str:
    email_change_request(user=account.owner, new_email="moved@example.com")
    return _emailed_link("moved@example.com", "/security/email/confirm/")


def _transfer_link(account: Account) -> str:
    ownership_transfer_start(
        account=account,
        actor=account.owner,
        to_email="heir@example.com",
        former_owner_stays=True,
        keep_payment_methods=False,
    )
    return _emailed_link("heir@example.com", "/ownership/")


# The token-less page an emailed link leads to shows its form only once the link was
# opened (its token kept in the session): open it first, as the person who got it does.
LINK_OPENERS: dict[str, Callable[[Account], str]] = {
    "accounts:invitation_page": _invitation_link,
    "accounts:contact_confirm": _contact_link,
    "security:email_change_confirm_page": _email_change_link,
    "accounts:ownership_transfer_page": _transfer_link,
}


def _client(route: Route) -> tuple[Client, str]:
    account = AccountFactory()
    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = CSRF
    if not route.is_public:  # public forms (login, reset) are for people not logged in
        client.force_login(account.owner)
        session = client.session
        session["current_account_id"] = account.pk
        session["reauth_at"] = int(time.time())
        session.save()
    if route.name in LINK_OPENERS:
        opened = client.get(LINK_OPENERS[route.name](account))
        assert opened.status_code == 302, (route.name, opened.status_code)
    kwargs: dict[str, Any] = {}
    if route.object_param:
        kwargs = OBJECT_KWARGS[route.name](account)
    return client, reverse(route.name, kwargs=kwargs or None)


@pytest.mark.django_db
@pytest.mark.parametrize("junk", list(JUNK), ids=list(JUNK))
@pytest.mark.parametrize("route", FORM_ROUTES, ids=[r.name for r in FORM_ROUTES])
def test_junk_in_every_field_changes_nothing_and_never_errors(route: Route, junk: str) -> None:
    client, url = _client(route)
    page = client.get(url)
    assert page.status_code in (200, 302), (url, page.status_code)
    names = (
        sorted(set(FIELD_NAME.findall(page.content.decode()))) if page.status_code == 200 else []
    )
    names = [n for n in names if n not in INFRASTRUCTURE_FIELDS]
    assert names, f"{url} shows no form fields: is it a confirmation page?"
    audit_before = AuditEvent.objects.count()
    mail_before = OutboxEmail.objects.count()
    data = {name: JUNK[junk] for name in names}
    data["csrfmiddlewaretoken"] = CSRF
    # The form's own account pin, as a browser sends it: the junk must reach the form.
    pin = ACCOUNT_PIN.search(page.content.decode()) if page.status_code == 200 else None
    if pin:
        data[ACCOUNT_PIN_FIELD] = pin.group(1)
    response = client.post(url, data)
    assert response.status_code < 500, (url, response.status_code)
    assert response.status_code != 403, "the CSRF token or the policy refused the owner"
    # The person is told what is wrong: the form comes back with its errors, or a
    # redirect carries a message.
    shown = client.get(response["Location"]) if response.status_code == 302 else response
    html = shown.content.decode()
    assert 'class="errorlist' in html or 'role="alert"' in html or "msg-error" in html, (
        url,
        response.status_code,
    )
    if route.name not in AUDITS_FAILURES:
        assert AuditEvent.objects.count() == audit_before, (url, names)
    assert OutboxEmail.objects.count() == mail_before, (url, names)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(CONFIRMATION_ROUTES))
def test_confirmation_pages_really_have_no_input_fields(name: str) -> None:
    route = next(r for r in ROUTES if r.name == name)
    client, url = _client(route)
    page = client.get(url)
    fields = set(FIELD_NAME.findall(page.content.decode())) - INFRASTRUCTURE_FIELDS
    assert page.status_code in (200, 302) and fields == set()


# --- Control characters in every one-line field ---------------------------------------

CONTROL = {
    "carriage return": "Acme\rLtd",
    "line feed": "Acme\nBcc: victim@example.com",
    "NUL": "Acme\x00Ltd",
    "escape": "Acme\x1b[2JLtd",
    "line separator": "Acme\u2028Ltd",
    "right-to-left override": "Acme\u202eLtd",
}
ONE_LINE_TYPES = {"text", "email", "search", "tel", "url"}
# Tables a refused request may still write: the session (CSRF rotation, last seen) and
# the login throttling counters. Every other table must be exactly as it was.
BOOKKEEPING = {"sessions.session", "security.trackedsession", "security.throttlebucket"}


class FormFields(HTMLParser):
    """What a browser would submit from a page's forms (the field values as the page
    filled them in), and which fields are one-line text inputs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.data: dict[str, list[str]] = {}
        self.one_line: list[str] = []
        self.invalid: set[str] = set()
        self._textarea: str | None = None
        self._select: str | None = None
        self._selected: list[str] = []
        self._first_option: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name", "")
        if tag in ("input", "textarea", "select") and a.get("aria-invalid") == "true":
            self.invalid.add(name)
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ONE_LINE_TYPES:
                self.one_line.append(name)
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.data.setdefault(name, []).append(a.get("value", "on"))
            elif kind not in ("file", "submit", "button"):
                self.data.setdefault(name, []).append(a.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea = name
            self.data.setdefault(name, []).append("")
        elif tag == "select" and name:
            self._select, self._selected, self._first_option = name, [], None
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            if self._first_option is None:
                self._first_option = value
            if "selected" in a:
                self._selected.append(value)

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.data[self._textarea][-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        elif tag == "select" and self._select is not None:
            chosen = self._selected or ([self._first_option] if self._first_option else [])
            self.data[self._select] = chosen
            self._select = None


def _fields(html: str) -> FormFields:
    parser = FormFields()
    parser.feed(html)
    return parser


def _database() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the bookkeeping ones, in a comparable form."""
    state = {}
    for model in apps.get_models():
        if model._meta.label_lower in BOOKKEEPING:
            continue
        rows = model.objects.order_by("pk").values_list()
        state[model._meta.label_lower] = [tuple(map(repr, row)) for row in rows]
    return state


@pytest.mark.django_db
@pytest.mark.parametrize("control", list(CONTROL), ids=list(CONTROL))
@pytest.mark.parametrize("route", FORM_ROUTES, ids=[r.name for r in FORM_ROUTES])
def test_control_characters_in_one_line_fields_are_refused_field_by_field(
    route: Route, control: str
) -> None:
    client, url = _client(route)
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    form = _fields(page.content.decode())
    if not form.one_line:
        pytest.skip(f"{url} has no one-line text field")
    data: dict[str, Any] = {**form.data, "csrfmiddlewaretoken": CSRF}
    for name in form.one_line:
        data[name] = CONTROL[control]
    before = _database()
    if route.name in AUDITS_FAILURES:
        before.pop("audit.auditevent")
    response = client.post(url, data)
    assert response.status_code < 500, (url, response.status_code)
    assert response.status_code != 403, "the CSRF token or the policy refused the owner"
    after = _database()
    if route.name in AUDITS_FAILURES:  # a failed login or password check is audited
        after.pop("audit.auditevent")
    changed = sorted(t for t in before if before[t] != after[t])
    assert changed == [], (url, changed)
    # The form comes back (a wrong two-factor code answers 400 with the form).
    assert response.status_code in (200, 400), (url, response.status_code, response.get("Location"))
    shown = _fields(response.content.decode())
    html = response.content.decode()
    assert 'class="errorlist' in html, url
    unmarked = sorted(set(form.one_line) - shown.invalid)
    assert unmarked == [], f"{url}: no error shown on {unmarked}"
