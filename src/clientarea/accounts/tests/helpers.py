"""Helpers for the sub-account tests: recent authentication, invitation links, outbox."""

from __future__ import annotations

import re
import time

from django.test import Client
from django.urls import reverse

from clientarea.accounts.reauth import SESSION_KEY
from clientarea.notifications.models import OutboxEmail

LINK_RE = re.compile(r"https?://\S+/invitation/(?P<token>[A-Za-z0-9_\-]+)/")


def confirm_recently(client: Client) -> Client:
    """As if the user had just confirmed their password (force_login does not count)."""
    session = client.session
    session[SESSION_KEY] = int(time.time())
    session.save()
    return client


def invitation_token_from_outbox(email: str) -> str:
    """Read the invitation link from the latest email queued for `email`."""
    row = OutboxEmail.objects.filter(to_email=email).order_by("-pk").first()
    assert row is not None, f"no email queued for {email}"
    match = LINK_RE.search(row.body_text)
    assert match is not None, row.body_text
    return match.group("token")


def open_invitation(client: Client, token: str) -> str:
    """Open an invitation link as a browser does: the link keeps its token in the session
    and redirects to the token-less page, whose URL is returned."""
    response = client.get(reverse("accounts:invitation_accept", args=[token]))
    page = reverse("accounts:invitation_page")
    assert response.status_code == 302 and response["Location"] == page, response
    return page


def confirm_long_ago(client: Client) -> Client:
    """As if the password was last confirmed an hour ago (force_login counts as recent)."""
    session = client.session
    session[SESSION_KEY] = int(time.time()) - 3600
    session.save()
    return client
