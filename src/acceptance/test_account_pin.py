"""A form shown for one account never saves into another: every client-area form carries
the account it was shown for, and a form posted after the session moved to another
account (Switch Account or a link into another account, in another tab) saves nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.middleware import ACCOUNT_PIN_FIELD, SESSION_ACCOUNT_KEY
from clientarea.accounts.models import Account, Invitation
from clientarea.accounts.tests.factories import AccountFactory
from clientarea.billing.tests.factories import make_invoice

SRC = Path(__file__).resolve().parents[1]


def _pin(page: str) -> str:
    found = re.search(rf'name="{ACCOUNT_PIN_FIELD}" value="(\d+)"', page)
    assert found, "the form carries no account pin"
    return found.group(1)


def _profile_form(account: Account, pin: str) -> dict[str, str]:
    return {
        ACCOUNT_PIN_FIELD: pin,
        "company_name": "Acme Web Studio",
        "address_line1": "1 Acme Road",
        "address_line2": "",
        "city": "Acmeville",
        "postcode": "A1",
        "country": str(account.country or "IE"),
        "tax_number": "",
    }


@pytest.mark.django_db
def test_a_form_left_open_while_a_link_moved_the_session_saves_nothing(
    account: Account, login_client: Callable[..., Client]
) -> None:
    globex = AccountFactory(owner=account.owner, company_name="Globex Ltd")
    client = login_client(account.owner, account)
    page = client.get(reverse("accounts:account_profile")).content.decode()  # a tab, for Acme
    pin = _pin(page)
    assert pin == str(account.pk)
    # Elsewhere (an email, another site): a link to a Globex invoice switches the session.
    assert (
        client.get(reverse("billing:invoice_detail", args=[make_invoice(globex).pk])).status_code
        == 200
    )
    assert client.session[SESSION_ACCOUNT_KEY] == globex.pk
    # Back in the open tab: Save. Nothing is written anywhere.
    response = client.post(reverse("accounts:account_profile"), _profile_form(account, pin))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:account_profile")
    globex.refresh_from_db()
    assert globex.company_name == "Globex Ltd" and globex.address_line1 != "1 Acme Road"
    follow = client.get(response["Location"]).content.decode()
    assert "That form was for another account" in follow


@pytest.mark.django_db
def test_an_invitation_typed_for_one_account_is_not_sent_from_another(
    account: Account, login_client: Callable[..., Client]
) -> None:
    globex = AccountFactory(owner=account.owner, company_name="Globex Ltd")
    client = login_client(account.owner, account)
    pin = _pin(client.get(reverse("accounts:user_invite")).content.decode())
    client.post(reverse("accounts:select_account"), {"account": globex.pk})
    client.post(
        reverse("accounts:user_invite"),
        {ACCOUNT_PIN_FIELD: pin, "email": "dev@example.org", "access": "all"},
    )
    assert not Invitation.objects.filter(email="dev@example.org").exists()


@pytest.mark.django_db
def test_a_form_for_the_current_account_saves(
    account: Account, login_client: Callable[..., Client]
) -> None:
    client = login_client(account.owner, account)
    pin = _pin(client.get(reverse("accounts:account_profile")).content.decode())
    response = client.post(reverse("accounts:account_profile"), _profile_form(account, pin))
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.address_line1 == "1 Acme Road"


def test_every_client_area_form_carries_the_account_pin() -> None:
    missing = []
    for path in [*(SRC / "templates").rglob("*.html"), *(SRC / "clientarea").rglob("*.html")]:
        if "/admin/" in str(path):
            continue  # the back office is not an account's
        text = path.read_text()
        for token in re.finditer(r"\{% csrf_token %\}", text):
            if not text[token.end() :].startswith("{{ account_pin }}"):
                missing.append(path.name)
    assert missing == []


@pytest.mark.django_db
@pytest.mark.parametrize("next_url", ["dashboard", "foo", "//evil.example", "/\\evil.example"])
def test_a_next_that_is_no_local_path_lands_on_the_dashboard_never_a_500(
    account: Account, login_client: Callable[..., Client], next_url: str
) -> None:
    from clientarea.accounts.tests.factories import TEST_PASSWORD

    globex = AccountFactory(owner=account.owner, company_name="Globex Ltd")
    client = login_client(account.owner, account)
    client.raise_request_exception = False
    answers = [
        client.post(reverse("accounts:select_account"), {"account": globex.pk, "next": next_url}),
        client.post(
            reverse("accounts:confirm_password") + f"?next={next_url}", {"password": TEST_PASSWORD}
        ),
    ]
    client.logout()
    answers.append(
        client.post(
            reverse("accounts:login") + f"?next={next_url}",
            {"username": account.owner.email, "password": TEST_PASSWORD},
        )
    )
    for response in answers:
        assert response.status_code == 302
        assert response["Location"].startswith("/") and not response["Location"].startswith("//")
        assert "evil" not in response["Location"]
