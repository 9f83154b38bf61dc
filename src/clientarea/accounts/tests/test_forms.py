"""Bad input on every form re-renders it with a message and writes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account, Membership
from clientarea.audit.models import AuditEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"first_name": "", "last_name": "X"}, "first_name"),
        ({"first_name": "A" * 151, "last_name": "X"}, "first_name"),
        ({"last_name": "X"}, "first_name"),
    ],
)
def test_profile_bad_input(
    login_client: Callable[..., Client], account: Account, data: dict, field: str
) -> None:
    client = login_client(account.owner, account)
    response = client.post(reverse("accounts:profile"), data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    account.owner.refresh_from_db()
    assert account.owner.first_name == "Olivia"
    assert not AuditEvent.objects.filter(action="user.profile_changed").exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"company_name": "New", "country": ""}, "country"),
        ({"company_name": "New", "country": "12"}, "country"),
        ({"company_name": "N" * 201, "country": "IE"}, "company_name"),
        ({"company_name": "New", "country": "IRL"}, "country"),
        ({"company_name": "New", "country": "ZZ"}, "country"),
    ],
)
def test_account_profile_bad_input(
    login_client: Callable[..., Client], account: Account, data: dict, field: str
) -> None:
    client = login_client(account.owner, account)
    response = client.post(reverse("accounts:account_profile"), data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    account.refresh_from_db()
    assert account.company_name == "Acme Web Studio"


def test_account_profile_saves_and_audits(
    login_client: Callable[..., Client], account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("profile")
    client = login_client(member.user, account)
    response = client.post(
        reverse("accounts:account_profile"),
        {"company_name": "Acme Renamed", "country": "DE", "city": "Bonn"},
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.company_name, account.country, account.city) == ("Acme Renamed", "DE", "Bonn")
    event = AuditEvent.objects.get(action="account.profile_changed")
    assert event.actor == member.user and event.account == account


def test_account_profile_needs_the_profile_permission(
    login_client: Callable[..., Client], account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("invoices")
    client = login_client(member.user, account)
    assert client.get(reverse("accounts:account_profile")).status_code == 403
    response = client.post(
        reverse("accounts:account_profile"), {"company_name": "Hijack", "country": "IE"}
    )
    assert response.status_code == 403
    account.refresh_from_db()
    assert account.company_name == "Acme Web Studio"


def test_the_country_is_chosen_by_name_and_a_made_up_code_is_refused_clearly(
    login_client: Callable[..., Client], account: Account
) -> None:
    from clientarea.accounts import services

    client = login_client(account.owner, account)
    page = client.get(reverse("accounts:account_profile")).content.decode()
    assert '<option value="IE" selected>Ireland</option>' in page
    assert '<option value="DE">Germany</option>' in page
    response = client.post(
        reverse("accounts:account_profile"), {"company_name": "New", "country": "ZZ"}
    )
    assert response.context["form"].errors["country"] == [
        "Choose a country from the list (ZZ is not one)."
    ]
    # The service refuses it too, for any other entry point.
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        services.account_update_profile(
            account=account, actor=account.owner, data={"country": "ZZ"}
        )
    account.refresh_from_db()
    assert account.country == "IE" and account.country.name == "Ireland"
