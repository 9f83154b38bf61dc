"""The owner's Users power on a token: offered to the owner only on Create Token, off
unless chosen, shown, emailed and audited; a sub-account can never give it (a forged
field is refused and changes nothing), and a token holds it only while its creator is
the owner."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.permissions import OwnerPower
from clientarea.accounts.reauth import SESSION_KEY as REAUTH_KEY
from clientarea.api import tokens
from clientarea.api.models import ApiToken
from clientarea.api.services import TokenError, token_authenticate
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail

from .helpers import make_token

pytestmark = pytest.mark.django_db
POWER = OwnerPower.MANAGE_USERS


def _client(user: User, account: Account) -> Client:
    client = Client()
    client.force_login(user)
    session = client.session
    session["current_account_id"] = account.pk
    session[REAUTH_KEY] = int(time.time())
    session.save()
    return client


def _form(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "People sync",
        "permissions": ["contacts"],
        "scope_mode": "all",
        "expires_on": (timezone.localdate() + timedelta(days=30)).isoformat(),
        "allowed_networks": "",
    }
    data.update(overrides)
    return data


def test_the_owner_is_offered_the_power_off_by_default(account: Account) -> None:
    client = _client(account.owner, account)
    form = client.get(reverse("api_tokens:create")).content.decode()
    assert 'name="manages_users"' in form and "Manage users and invitations" in form
    client.post(reverse("api_tokens:create"), _form())
    token = ApiToken.objects.get()
    assert token.manages_users is False
    assert (
        "Manage users and invitations"
        not in client.get(reverse("api_tokens:list")).content.decode()
    )


def test_the_owner_chooses_it_shown_emailed_and_audited(account: Account) -> None:
    client = _client(account.owner, account)
    response = client.post(reverse("api_tokens:create"), _form(manages_users="on"))
    assert response.status_code == 200
    token = ApiToken.objects.get()
    assert token.manages_users is True and token.created_as_owner is True
    listed = client.get(reverse("api_tokens:list")).content.decode()
    assert "Manage users and invitations" in listed
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.changes["manages_users"] is True
    (email,) = OutboxEmail.objects.filter(to_email=account.owner.email, kind="personal")
    assert "Manage users and invitations" in email.body_text
    html = response.content.decode()
    start = html.index('value="ca_pat_') + len('value="')
    secret = html[start : start + tokens.LENGTH]
    assert token_authenticate(secret=secret, ip=None).access.holds_power(POWER)


def test_a_sub_account_is_not_offered_it_and_a_forged_field_changes_nothing(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("contacts", "invoices").user
    client = _client(member, account)
    assert 'name="manages_users"' not in client.get(reverse("api_tokens:create")).content.decode()
    response = client.post(reverse("api_tokens:create"), _form(manages_users="on"))
    assert response.status_code == 200
    assert "Only the account&#x27;s owner can let a token manage users" in response.content.decode()
    assert not ApiToken.objects.exists()
    assert not OutboxEmail.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="api_token").exists()


@pytest.mark.parametrize("value", [True, "yes", 1])
def test_the_service_refuses_it_to_a_sub_account_and_odd_values(
    account: Account, member_factory: Callable[..., Membership], value: object
) -> None:
    member = member_factory("contacts").user
    with pytest.raises(TokenError, match="Only the account's owner"):
        make_token(account, member, codes=["contacts"], manages_users=value)
    if value is not True:
        with pytest.raises(TokenError):
            make_token(account, codes=["contacts"], manages_users=value)
    assert not ApiToken.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="api_token").exists()


def test_without_the_choice_an_owner_token_holds_no_owner_power(account: Account) -> None:
    _, secret = make_token(account, codes=["contacts"])
    access = token_authenticate(secret=secret, ip=None).access
    assert not any(access.holds_power(p) for p in OwnerPower)


def test_the_power_is_only_the_users_power(account: Account) -> None:
    _, secret = make_token(account, codes=["contacts"], manages_users=True)
    access = token_authenticate(secret=secret, ip=None).access
    assert access.holds_power(POWER)
    assert not access.is_owner
    others = [p for p in OwnerPower if p is not POWER]
    assert not any(access.holds_power(p) for p in others)
    # Asked again by a service, as it stands now: still the creator's as the owner.
    current = access.current()
    assert current is not None and current.holds_power(POWER)


def test_the_power_ends_when_ownership_moves(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    _, secret = make_token(account, codes=["contacts"], manages_users=True)
    access = token_authenticate(secret=secret, ip=None).access
    newcomer = member_factory("contacts").user
    former = account.owner
    Account.objects.filter(pk=account.pk).update(owner=newcomer)
    Membership.objects.create(account=account, user=former, permissions=["contacts"])
    assert access.current() is None  # a token made as owner dies when ownership moves
