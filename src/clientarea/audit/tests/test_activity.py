from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clientarea.accounts import permissions
from clientarea.accounts.models import Account, Membership
from clientarea.accounts.services import contact_create, invitation_create, membership_revoke
from clientarea.audit.services import audit_record

pytestmark = pytest.mark.django_db


def test_owner_sees_the_accounts_activity_with_ip_and_can_filter_by_user(
    login_client: Callable[..., Client],
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    member = member_factory("contacts", "invoices")
    data = {"name": "Bea", "email": "bea@example.com", "email_kinds": ["invoice"]}
    contact_create(account=account, actor=member.user, data=data)
    invitation_create(account=account, actor=account.owner, email="new@example.com",
                      permission_codes=["invoices"])  # fmt: skip
    membership_revoke(membership=member, actor=account.owner)
    audit_record(action="invitation.sent", account=other_account, target_label="globex@x.com")
    client = login_client(account.owner, account)
    page = client.get(reverse("audit:activity")).content.decode()
    for words in ["Contact added", "Invitation sent", "Access revoked", "new@example.com",
                  "View &amp; Pay Invoices"]:  # fmt: skip
        assert words in page, words
    assert "globex@x.com" not in page
    only_member = client.get(reverse("audit:activity"), {"user": member.user.pk}).content.decode()
    listed = only_member.split("<tbody>", 1)[1]  # the action filter names every action
    assert "Contact added" in listed and "Invitation sent" not in listed
    # A user id from outside the account filters nothing in and leaks nothing.
    stranger = client.get(reverse("audit:activity"), {"user": other_account.owner.pk})
    assert stranger.status_code == 200 and "globex@x.com" not in stranger.content.decode()


def test_the_activity_log_is_owner_only(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    partner = member_factory(*permissions.ALL_CODES)
    assert login_client(partner.user, account).get(reverse("audit:activity")).status_code == 403


def test_activity_queries_do_not_grow(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    client.get(reverse("audit:activity"))

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("audit:activity")).status_code == 200
        return len(ctx)

    for i in range(5):
        audit_record(action="contact.added", actor=account.owner, account=account,
                     target_label=f"c{i}")  # fmt: skip
    five = count()
    for i in range(45):
        audit_record(action="contact.added", actor=account.owner, account=account,
                     target_label=f"d{i}")  # fmt: skip
    assert count() == five


@pytest.mark.parametrize("raw", ["²", "-1", "1e3", "abc", "99999999999999999999999"])
def test_a_junk_user_filter_shows_everyone_instead_of_failing(
    login_client: Callable[..., Client], account: Account, raw: str
) -> None:
    response = login_client(account.owner, account).get(reverse("audit:activity"), {"user": raw})
    assert response.status_code == 200


def test_times_in_the_changes_read_as_local_times_not_iso_text(
    login_client: Callable[..., Client], account: Account
) -> None:
    audit_record(
        action="membership.permissions_changed",
        account=account,
        target_label="dev@example.com",
        changes={
            "expires_at": [None, "2026-12-08T06:00:47.271333+00:00"],
            "renewed_on": "2027-01-31T00:00:00+00:00",
            "note": "Tuesday",
        },
    )
    page = login_client(account.owner, account).get(reverse("audit:activity")).content.decode()
    assert "2026-12-08T06" not in page and "+00:00" not in page
    assert "expires at: — → 8 Dec 2026, 06:00 UTC" in page
    assert "31 Jan 2027, 00:00 UTC" in page  # not an expiry: the moment itself
    assert "note: Tuesday" in page
