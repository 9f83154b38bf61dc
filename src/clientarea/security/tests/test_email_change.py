"""Changing the email address (ASVS 6.3.7 and 7.5.1)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import User
from clientarea.accounts.tests.factories import UserFactory
from clientarea.notifications.models import OutboxEmail

pytestmark = pytest.mark.django_db

PAGE = "/security/email/confirm/"


def _link(to: str) -> str:
    body = OutboxEmail.objects.get(to_email=to).body_text
    match = re.search(r"https?://\S+", body)
    assert match
    return match.group(0)


def test_the_new_address_confirms_and_the_old_one_is_told(
    login_client: Callable[..., Client], settings: Any
) -> None:
    """ASVS 6.3.7: the change needs the new address; the old address is notified."""
    settings.SITE_URL = "https://clients.example.net"
    settings.ALLOWED_HOSTS = ["evil.example.org", "testserver"]
    user = UserFactory(email="old@example.com")
    client = login_client(user)
    client.post(
        reverse("security:email_change"), {"email": "New@Example.com"}, HTTP_HOST="evil.example.org"
    )
    user.refresh_from_db()
    assert user.email == "old@example.com"  # nothing changes yet
    link = _link("new@example.com")
    assert link.startswith("https://clients.example.net/security/email/confirm/")
    assert OutboxEmail.objects.filter(to_email="old@example.com").count() == 1
    path = link.removeprefix("https://clients.example.net")
    scanner = Client()
    page = scanner.get(path, follow=True)  # a mail scanner opening the link changes nothing
    assert page.redirect_chain == [(PAGE, 302)]  # the token leaves the address bar at once
    assert page.status_code == 200 and page["Referrer-Policy"] == "strict-origin"
    assert User.objects.get(pk=user.pk).email == "old@example.com"
    # The link itself takes no POST: the page's button posts to the token-less URL.
    assert Client().post(path).status_code == 405
    browser = Client()
    browser.get(path)
    assert browser.post(PAGE).status_code == 302
    assert User.objects.get(pk=user.pk).email == "new@example.com"
    assert OutboxEmail.objects.filter(
        to_email="old@example.com", subject__contains="was changed"
    ).exists()
    # the link works once
    assert scanner.post(PAGE).status_code == 400
    again = Client()
    again.get(path)
    assert again.post(PAGE).status_code == 400
    # the page opened without a link has nothing to confirm
    assert Client().post(PAGE).status_code == 400


def test_a_tampered_link_changes_nothing(login_client: Callable[..., Client]) -> None:
    user = UserFactory(email="old@example.com")
    login_client(user).post(reverse("security:email_change"), {"email": "new@example.com"})
    path = "/" + _link("new@example.com").split("/", 3)[3]
    forged = path[:-5] + ("aaaa/" if not path.endswith("aaaa/") else "bbbb/")
    client = Client()
    assert client.get(forged).status_code == 302
    assert client.get(PAGE).status_code == 400
    assert client.post(PAGE).status_code == 400
    assert User.objects.get(pk=user.pk).email == "old@example.com"


def test_an_address_already_in_use_gets_no_link_but_the_same_answer(
    login_client: Callable[..., Client],
) -> None:
    """ASVS 6.3.8: the form does not reveal which addresses have a login."""
    UserFactory(email="taken@example.com")
    user = UserFactory(email="me@example.com")
    client = login_client(user)
    taken = client.post(reverse("security:email_change"), {"email": "taken@example.com"})
    free = client.post(reverse("security:email_change"), {"email": "free@example.com"})
    assert taken.status_code == free.status_code == 302
    assert not OutboxEmail.objects.filter(to_email="taken@example.com").exists()
    assert OutboxEmail.objects.filter(to_email="free@example.com").exists()
