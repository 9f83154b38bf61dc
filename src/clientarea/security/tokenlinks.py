"""Links whose token leaves the address bar at once (Django's password-reset pattern).

A link sent by email (``/invitation/<token>/``) is opened once: its view keeps the token in
the session and redirects straight to a token-less page (``/invitation/accept/``), which
shows the form and receives the POST. So the token is in exactly one request line — the
one every access log redacts (``logfilters``) — and never in the address bar, the history,
a Referer, a bookmark, a screenshot, or a later request.

Usage, for a link kind ``"invitation"``::

    def invitation_link(request, token):          # GET /invitation/<token>/
        return token_link_redirect(request, kind="invitation", token=token,
                                   to="accounts:invitation_page")

    def invitation_page(request):                 # GET/POST /invitation/accept/
        token = token_from_session(request, kind="invitation")   # None: no link opened
        ...
        token_forget(request, kind="invitation")  # once used

Keep the token-less page under the same prefix as the link (``SECRET_PATH_PREFIXES``), so
it gets the same strict-origin referrer and no-store headers. The session survives logging
in (Django keeps an anonymous session's data when a user logs in), so a page can send a
person to the login page and back. One token per kind is kept: opening a second link of
the same kind replaces the first."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import resolve_url

SESSION_PREFIX = "token_link:"
MAX_TOKEN_LENGTH = 1024


def _key(kind: str) -> str:
    return SESSION_PREFIX + kind


def token_link_redirect(
    request: HttpRequest, *, kind: str, token: str, to: str
) -> HttpResponseRedirect:
    """Keep ``token`` in the session under ``kind`` and redirect to ``to`` (a URL or a URL
    name). The redirect carries no token."""
    request.session[_key(kind)] = token[:MAX_TOKEN_LENGTH]
    return HttpResponseRedirect(resolve_url(to))


def token_from_session(request: HttpRequest, *, kind: str) -> str | None:
    """The token of the last link of ``kind`` opened in this session, if any."""
    token = request.session.get(_key(kind))
    return token if isinstance(token, str) and token else None


def token_forget(request: HttpRequest, *, kind: str) -> None:
    request.session.pop(_key(kind), None)
