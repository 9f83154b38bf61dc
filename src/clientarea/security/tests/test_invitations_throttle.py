"""Invitation links and invitation sending are rate-limited (ASVS 6.3.1, 2.4.1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account, Invitation
from clientarea.accounts.services import invitation_create
from clientarea.accounts.tests.helpers import confirm_recently, invitation_token_from_outbox

pytestmark = pytest.mark.django_db


def test_guessing_invitation_links_is_limited_per_ip(
    client: Client, account: Account, settings: Any
) -> None:
    """ASVS 6.3.1: invitation accept is throttled; the block also stops a valid link."""
    settings.SECURITY_THROTTLES = {"token-ip": (3, 3600)}
    invitation_create(
        account=account, actor=account.owner, email="new@example.com", permission_codes=["tickets"]
    )
    token = invitation_token_from_outbox("new@example.com")
    for n in range(3):
        guess = client.get(f"/invitation/guess{n}abcdef/", follow=True)
        assert guess.redirect_chain == [("/invitation/accept/", 302)]
        assert guess.status_code == 404
    blocked = client.get(reverse("accounts:invitation_accept", args=[token]))
    assert blocked.status_code == 429
    assert blocked["Referrer-Policy"] == "strict-origin"
    # The page only reads the token the link left in the session.
    assert client.get("/invitation/accept/").status_code == 404
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    assert (
        elsewhere.get(reverse("accounts:invitation_accept", args=[token]), follow=True).status_code
        == 200
    )


def test_the_owner_cannot_send_invitations_without_limit(
    login_client: Callable[..., Client], account: Account, settings: Any
) -> None:
    """ASVS 2.4.1: the owner's invitation sending is rate-limited (anti-automation)."""
    settings.SECURITY_THROTTLES = {"invite-send": (2, 3600)}
    client = confirm_recently(login_client(account.owner, account))
    url = reverse("accounts:user_invite")
    for n in range(2):
        client.post(url, {"email": f"p{n}@example.com", "access": "all"})
    assert Invitation.objects.filter(account=account).count() == 2
    refused = client.post(url, {"email": "p9@example.com", "access": "all"})
    assert "Too many attempts" in refused.content.decode()
