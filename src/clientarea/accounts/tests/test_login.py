from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import User
from clientarea.accounts.tests.factories import TEST_PASSWORD, UserFactory
from clientarea.notifications.models import OutboxEmail

pytestmark = pytest.mark.django_db


def test_wrong_password_and_unknown_email_get_the_same_message(client: Client) -> None:
    UserFactory(email="known@example.com")
    url = reverse("accounts:login")
    wrong = client.post(url, {"username": "known@example.com", "password": "nope-nope-nope"})
    unknown = client.post(url, {"username": "nobody@example.com", "password": "nope-nope-nope"})
    assert wrong.status_code == unknown.status_code == 200
    assert wrong.context["form"].errors == unknown.context["form"].errors
    assert "do not match an active login" in wrong.content.decode()


def test_login_is_case_insensitive_and_rotates_the_session_key(client: Client) -> None:
    UserFactory(email="mixed@example.com")
    client.get(reverse("accounts:login"))
    session = client.session
    session["marker"] = "before"
    session.save()
    before = session.session_key
    response = client.post(
        reverse("accounts:login"), {"username": "MiXeD@Example.com", "password": TEST_PASSWORD}
    )
    assert response.status_code == 302
    assert client.session.session_key != before


def test_emails_are_unique_whatever_their_case() -> None:
    from django.db import IntegrityError, transaction

    UserFactory(email="dup@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(email="DUP@example.com", first_name="X")


def test_logout_is_post_only_and_clears_the_session(client: Client, owner: User) -> None:
    client.force_login(owner)
    assert client.get(reverse("accounts:logout")).status_code == 405
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("accounts:profile")).status_code == 302


def test_password_reset_never_reveals_whether_an_email_is_registered(client: Client) -> None:
    UserFactory(email="known@example.com")
    url = reverse("accounts:password_reset")
    known = client.post(url, {"email": "known@example.com"})
    unknown = client.post(url, {"email": "stranger@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert list(OutboxEmail.objects.values_list("to_email", flat=True)) == ["known@example.com"]


def test_reset_link_is_built_from_site_url_not_the_host_header(
    client: Client, settings: pytest.FixtureRequest
) -> None:
    settings.SITE_URL = "https://clients.example.net"
    settings.ALLOWED_HOSTS = ["evil.example.org", "testserver"]
    UserFactory(email="known@example.com")
    client.post(
        reverse("accounts:password_reset"),
        {"email": "known@example.com"},
        HTTP_HOST="evil.example.org",
    )
    body = OutboxEmail.objects.get().body_text
    assert "https://clients.example.net/password-reset/" in body
    assert "evil.example.org" not in body


def test_reset_link_sets_a_new_password(client: Client) -> None:
    user = UserFactory(email="known@example.com")
    client.post(reverse("accounts:password_reset"), {"email": "known@example.com"})
    link = next(
        line
        for line in OutboxEmail.objects.get().body_text.splitlines()
        if "password-reset/" in line
    )
    path = link.split("127.0.0.1:8000", 1)[1] if "127.0.0.1:8000" in link else link
    response = client.get(path, follow=True)
    form_url = response.redirect_chain[-1][0]
    response = client.post(
        form_url,
        {"new_password1": "a brand new passphrase", "new_password2": "a brand new passphrase"},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("a brand new passphrase")
