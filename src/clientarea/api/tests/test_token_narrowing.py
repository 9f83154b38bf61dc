"""A token keeps at most its creator's grant "from then on": narrowing the grant narrows
the token for good (widening it again gives nothing back), and an access past its expiry
ends its tokens even when it is extended before the worker marks it expired. Both were
found by an attacker-side review (a token regained a permission the owner had taken
away; an expired person's token came back to life)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.services import membership_grant, membership_update
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory
from clientarea.api.models import ApiToken
from clientarea.audit.models import AuditEvent
from clientarea.hosting.tests.factories import ServiceFactory

from .helpers import api_get, assert_problem, make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def account() -> Account:
    return AccountFactory()


def _grant(membership: Membership, codes: list[str], **kwargs: Any) -> None:
    membership_update(
        membership=membership,
        actor=membership.account.owner,
        permission_codes=codes,
        expires_at=kwargs.pop("expires_at", membership.expires_at),
        **kwargs,
    )


def test_a_token_narrowed_with_its_creator_stays_narrowed(account: Account) -> None:
    member = MembershipFactory(account=account, permissions=["invoices", "contacts"])
    token, secret = make_token(account, member.user, codes=["invoices", "contacts"])
    assert api_get(secret, "/api/v1/invoices").status_code == 200

    _grant(member, ["contacts"])
    assert_problem(api_get(secret, "/api/v1/invoices"), 403)
    token.refresh_from_db()
    assert token.permissions == ["contacts"]
    assert AuditEvent.objects.filter(action="api_token.narrowed", target_id=str(token.pk)).exists()

    _grant(member, ["invoices", "contacts"])  # given back to the person, not to the token
    assert_problem(api_get(secret, "/api/v1/invoices"), 403)
    assert api_get(secret, "/api/v1/contacts").status_code == 200


def test_a_token_scope_narrowed_with_its_creator_stays_narrowed(account: Account) -> None:
    kept, dropped = ServiceFactory(account=account), ServiceFactory(account=account)
    member = MembershipFactory(account=account, permissions=["products"])
    token, secret = make_token(account, member.user, codes=["products"])
    assert api_get(secret, f"/api/v1/services/{dropped.pk}").status_code == 200

    _grant(member, ["products"], scope={"service": [kept.pk], "domain": []})
    _grant(member, ["products"], scope=None)  # the person is unlimited again
    assert_problem(api_get(secret, f"/api/v1/services/{dropped.pk}"), 404)
    assert api_get(secret, f"/api/v1/services/{kept.pk}").status_code == 200
    token.refresh_from_db()
    assert token.scope == {"service": [kept.pk], "domain": []}


def test_an_unchanged_grant_leaves_its_tokens_alone(account: Account) -> None:
    member = MembershipFactory(account=account, permissions=["manageproducts"])
    token, _ = make_token(account, member.user, codes=["manageproducts"])
    before = list(ApiToken.objects.filter(pk=token.pk).values_list("permissions", "scope"))
    _grant(member, ["manageproducts"], expires_at=timezone.now() + timedelta(days=9))
    assert list(ApiToken.objects.filter(pk=token.pk).values_list("permissions", "scope")) == before
    assert not AuditEvent.objects.filter(action="api_token.narrowed").exists()


def _lapsed_member_with_token(account: Account) -> tuple[Membership, ApiToken, str]:
    """A sub-account with a token whose access is past its expiry, which the worker has
    not marked expired yet."""
    member = MembershipFactory(
        account=account,
        permissions=["invoices"],
        expires_at=timezone.now() + timedelta(hours=1),
    )
    token, secret = make_token(account, member.user, codes=["invoices"])
    Membership.objects.filter(pk=member.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    member.refresh_from_db()
    assert member.status == Membership.Status.ACTIVE  # the worker has not run yet
    return member, token, secret


def test_extending_a_lapsed_access_does_not_revive_its_tokens(account: Account) -> None:
    member, token, secret = _lapsed_member_with_token(account)
    assert_problem(api_get(secret, "/api/v1/invoices"), 401)

    _grant(member, ["invoices"], expires_at=timezone.now() + timedelta(days=30))
    assert_problem(api_get(secret, "/api/v1/invoices"), 401)
    token.refresh_from_db()
    assert token.revoked_at is not None and token.end_reason == ApiToken.EndReason.ACCESS_ENDED
    _, fresh = make_token(account, member.user, codes=["invoices"])
    assert api_get(fresh, "/api/v1/invoices").status_code == 200  # a new token works


def test_accepting_again_after_a_lapsed_access_does_not_revive_its_tokens(
    account: Account,
) -> None:
    """Found by the access model's explorer (depth 7): access lapses before the worker
    marks it expired, the owner invites the person again and they accept; the old token
    must stay dead (membership_grant restores the same row)."""
    member, token, secret = _lapsed_member_with_token(account)

    membership_grant(
        account=account, user=member.user, permission_codes=["invoices"], send_email=False
    )
    assert_problem(api_get(secret, "/api/v1/invoices"), 401)
    token.refresh_from_db()
    assert token.revoked_at is not None and token.end_reason == ApiToken.EndReason.ACCESS_ENDED
