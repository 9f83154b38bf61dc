from __future__ import annotations

import time

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from clientarea.accounts.models import Account
from clientarea.accounts.reauth import SESSION_KEY, has_recent_auth, recent_auth_required
from clientarea.accounts.tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def test_login_counts_as_recent_authentication(client: Client, account: Account) -> None:
    client.post(
        reverse("accounts:login"), {"username": account.owner.email, "password": TEST_PASSWORD}
    )
    assert isinstance(client.session[SESSION_KEY], int)


def test_stale_authentication_is_sent_to_confirm_then_back(
    client: Client, account: Account
) -> None:
    client.force_login(account.owner)  # force_login sends no request: no recent auth
    session = client.session
    session[SESSION_KEY] = int(time.time()) - 3600
    session.save()

    @recent_auth_required
    def sensitive(request: HttpRequest) -> HttpResponse:
        return HttpResponse("secret")

    request = RequestFactory().get("/services/1/password/")
    request.session = client.session
    response = sensitive(request)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:confirm_password"))

    url = reverse("accounts:confirm_password") + "?next=/services/1/password/"
    wrong = client.post(url, {"password": "wrong", "next": "/services/1/password/"})
    assert "That is not your current password." in wrong.content.decode()
    right = client.post(url, {"password": TEST_PASSWORD, "next": "/services/1/password/"})
    assert right["Location"] == "/services/1/password/"
    request.session = client.session
    assert has_recent_auth(request)


def test_confirm_password_never_redirects_off_site(client: Client, account: Account) -> None:
    client.force_login(account.owner)
    response = client.post(
        reverse("accounts:confirm_password"),
        {"password": TEST_PASSWORD, "next": "https://evil.example.org/"},
    )
    assert response["Location"] == "/"


def test_a_refused_post_returns_to_the_page_it_came_from_not_the_post_only_url(
    client: Client, account: Account
) -> None:
    """After "Confirm your password", a POST-only action (Resend Invite) sends the user back
    to the page holding its button, which a GET can open; an off-site Referer is ignored."""
    client.force_login(account.owner)
    session = client.session
    session[SESSION_KEY] = int(time.time()) - 3600
    session["current_account_id"] = account.pk
    session.save()
    users_page = reverse("accounts:users")
    response = client.post(
        reverse("accounts:invitation_resend", args=[1]),
        HTTP_REFERER=f"http://testserver{users_page}",
    )
    assert response.status_code == 302
    back = client.post(
        response["Location"],
        {"password": TEST_PASSWORD, "next": users_page},
    )
    assert back["Location"] == users_page
    assert client.get(back["Location"]).status_code == 200

    client.session[SESSION_KEY] = 0
    session = client.session
    session[SESSION_KEY] = 0
    session.save()
    response = client.post(
        reverse("accounts:invitation_resend", args=[1]), HTTP_REFERER="https://evil.example.org/x"
    )
    assert "next=%2F" in response["Location"] and "evil" not in response["Location"]
