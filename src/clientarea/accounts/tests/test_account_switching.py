from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.services import membership_grant, membership_revoke
from clientarea.accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_user_with_two_accounts_picks_one_after_login(
    client: Client, account: Account, other_account: Account
) -> None:
    user = UserFactory()
    membership_grant(account=account, user=user, permission_codes=["tickets"])
    membership_grant(account=other_account, user=user, permission_codes=["tickets"])
    client.force_login(user)
    response = client.get(reverse("core:dashboard"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:select_account")
    page = client.get(reverse("accounts:select_account")).content.decode()
    assert "Acme Web Studio" in page and "Globex Ltd" in page
    client.post(reverse("accounts:select_account"), {"account": other_account.pk})
    dashboard = client.get(reverse("core:dashboard")).content.decode()
    assert "Globex Ltd" in dashboard
    assert "Switch Account" in dashboard


def test_user_with_one_account_lands_on_it(client: Client, account: Account) -> None:
    client.force_login(account.owner)
    response = client.get(reverse("core:dashboard"))
    assert response.status_code == 200
    assert "Hello, Olivia!" in response.content.decode()


def test_selecting_an_account_one_does_not_belong_to_is_a_404(
    login_client: Callable[..., Client], account: Account, other_account: Account
) -> None:
    client = login_client(account.owner, account)
    response = client.post(reverse("accounts:select_account"), {"account": other_account.pk})
    assert response.status_code == 404
    assert client.session["current_account_id"] == account.pk


def test_garbage_account_choice_is_refused_with_a_message(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    response = client.post(reverse("accounts:select_account"), {"account": "x'; drop"}, follow=True)
    assert "Choose one of your accounts." in response.content.decode()


def test_removed_user_loses_the_account_even_with_an_old_session(
    login_client: Callable[..., Client], account: Account, member_factory: Callable[..., Membership]
) -> None:
    membership = member_factory("tickets")
    old_session = login_client(membership.user, account)
    assert old_session.get(reverse("core:dashboard")).status_code == 200
    membership_revoke(membership=membership, actor=account.owner)
    response = old_session.get(reverse("core:dashboard"))
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:access_removed")
    assert "current_account_id" not in old_session.session
    # and selecting it again by hand is refused
    assert (
        old_session.post(reverse("accounts:select_account"), {"account": account.pk}).status_code
        == 404
    )


def test_user_keeps_other_accounts_after_revocation(
    login_client: Callable[..., Client], account: Account, other_account: Account
) -> None:
    user: User = UserFactory()
    here = membership_grant(account=account, user=user, permission_codes=["tickets"])
    membership_grant(account=other_account, user=user, permission_codes=["tickets"])
    membership_revoke(membership=here, actor=account.owner)
    client = login_client(user)
    assert client.get(reverse("core:dashboard")).status_code == 200  # auto-selects the other
    assert client.session["current_account_id"] == other_account.pk
