"""Bad input on every form: empty, far too long, or the wrong type of value.

For every route that renders a form (GET and POST), the owner (or, for the user's own
pages, the logged-in user) opens the page, reads the names of its fields from the HTML,
and posts junk in all of them. The answer must be a page or a redirect, never a server
error, and nothing may change: no audit event is written (every state-changing action
writes one) and no email is queued, and the person is shown what is wrong.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.test import Client

from acceptance.objects import OBJECT_KWARGS, PLACEHOLDER_ROUTES, STATIC_KWARGS
from acceptance.test_access_matrix import CSRF
from clientarea.access_table import ROUTES, Route
from clientarea.accounts.tests.factories import AccountFactory
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail

# Pages that are only a confirmation button: posting them is the action itself.
CONFIRMATION_ROUTES = {"accounts:user_revoke", "accounts:contact_remove", "hosting:password_reveal"}
FORM_ROUTES = [
    r
    for r in ROUTES
    if "GET" in r.methods
    and "POST" in r.methods
    and r.name not in STATIC_KWARGS
    and r.name not in CONFIRMATION_ROUTES
    # Pages an emailed link leads to (its token kept in the session): without a link
    # they show only a refusal; their forms are tested with real links in their apps.
    and r.name not in PLACEHOLDER_ROUTES
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
    from django.urls import reverse

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
    names = [n for n in names if n != "csrfmiddlewaretoken"]
    assert names, f"{url} shows no form fields: is it a confirmation page?"
    audit_before = AuditEvent.objects.count()
    mail_before = OutboxEmail.objects.count()
    data = {name: JUNK[junk] for name in names}
    data["csrfmiddlewaretoken"] = CSRF
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
    fields = set(FIELD_NAME.findall(page.content.decode())) - {"csrfmiddlewaretoken"}
    assert page.status_code in (200, 302) and fields == set()
