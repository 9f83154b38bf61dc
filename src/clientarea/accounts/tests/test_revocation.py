"""Revoke Access and expired access end everything at once; the data stays attributed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.policy import accounts_for
from clientarea.accounts.services import (
    AccessError,
    membership_expire_due,
    membership_revoke,
    membership_update,
)
from clientarea.accounts.signals import access_ended
from clientarea.accounts.tests.factories import MembershipFactory
from clientarea.audit.models import AuditEvent
from clientarea.audit.services import audit_record
from clientarea.notifications.models import OutboxEmail

pytestmark = pytest.mark.django_db


@pytest.fixture
def ended() -> Any:
    calls: list[tuple[int, str]] = []

    def receiver(sender: Any, membership: Membership, reason: str, **kw: Any) -> None:
        calls.append((membership.pk, reason))

    access_ended.connect(receiver)
    yield calls
    access_ended.disconnect(receiver)


def test_revoke_ends_access_on_every_device_but_keeps_other_accounts(
    login_client: Callable[..., Client],
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
    ended: list[tuple[int, str]],
) -> None:
    member = member_factory("invoices", "emails")
    elsewhere = MembershipFactory(account=other_account, user=member.user, permissions=["emails"])
    laptop = login_client(member.user, account)
    phone = login_client(member.user, account)
    for device in (laptop, phone):
        assert device.get(reverse("notifications:history")).status_code == 200
    login_client(account.owner, account).post(reverse("accounts:user_revoke", args=[member.pk]))
    for device in (laptop, phone):
        response = device.get(reverse("notifications:history"))
        assert response["Location"] == reverse("accounts:access_removed")
    assert ended == [(member.pk, "revoked")]
    assert list(accounts_for(member.user)) == [other_account]
    assert (
        login_client(member.user, other_account).get(reverse("core:dashboard")).status_code == 200
    )
    assert elsewhere.is_usable()


def test_revocation_keeps_the_row_history_and_tells_the_person(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets")
    audit_record(action="ticket.opened", actor=member.user, account=account)
    membership_revoke(membership=member, actor=account.owner)
    member.refresh_from_db()
    assert member.status == Membership.Status.REVOKED and member.revoked_at is not None
    assert AuditEvent.objects.filter(actor=member.user, action="ticket.opened").exists()
    event = AuditEvent.objects.get(action="membership.revoked")
    assert event.actor == account.owner and event.target_label == member.user.email
    email = OutboxEmail.objects.get(to_email=member.user.email)
    assert "has ended" in email.subject


def test_only_the_owner_can_revoke_or_change_permissions(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    partner = member_factory("invoices", "tickets", "contacts", "profile", "emails")
    victim = member_factory("invoices")
    with pytest.raises(AccessError):
        membership_revoke(membership=victim, actor=partner.user)
    with pytest.raises(AccessError):
        membership_update(membership=partner, actor=partner.user,
                          permission_codes=["invoices"], expires_at=None)  # fmt: skip
    victim.refresh_from_db()
    assert victim.status == Membership.Status.ACTIVE


def test_permission_change_is_audited_with_before_and_after(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("invoices")
    until = timezone.now() + timedelta(days=10)
    membership_update(membership=member, actor=account.owner,
                      permission_codes=["tickets", "invoices"], expires_at=until)  # fmt: skip
    event = AuditEvent.objects.get(action="membership.permissions_changed")
    assert event.changes["permissions"] == [["invoices"], ["invoices", "tickets"]]
    assert event.changes["expires_at"][0] is None


def test_expired_access_behaves_like_revoked_access(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
    ended: list[tuple[int, str]],
) -> None:
    member = member_factory("emails", expires_at=timezone.now() + timedelta(hours=1))
    device = login_client(member.user, account)
    assert device.get(reverse("notifications:history")).status_code == 200
    Membership.objects.filter(pk=member.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    # Refused at once, before the worker has recorded anything.
    response = device.get(reverse("notifications:history"))
    assert response["Location"] == reverse("accounts:access_removed")
    assert membership_expire_due() == 1
    assert membership_expire_due() == 0
    member.refresh_from_db()
    assert member.status == Membership.Status.EXPIRED
    assert ended == [(member.pk, "expired")]
    assert AuditEvent.objects.filter(action="membership.expired", account=account).count() == 1
    assert "expired" in OutboxEmail.objects.get(to_email=member.user.email).body_text
    page = login_client(account.owner, account).get(reverse("accounts:users")).content.decode()
    assert "Expired" in page


def test_access_removed_names_the_account_and_who_can_restore_it(
    login_client: Callable[..., Client],
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    member = member_factory("tickets")
    device = login_client(member.user, account)
    membership_revoke(membership=member, actor=account.owner)
    response = device.get(reverse("core:dashboard"), follow=True)
    page = response.content.decode()
    assert f"Your access to <strong>{account.display_name}</strong> was revoked on" in page
    assert "Only the owner of" in page
    assert other_account.display_name not in page


def test_a_revoked_or_expired_person_logging_in_is_told_which_access_ended(
    login_client: Callable[..., Client],
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    revoked = member_factory("tickets")
    membership_revoke(membership=revoked, actor=account.owner)
    page = login_client(revoked.user).get(reverse("accounts:select_account")).content.decode()
    assert f"Your access to <strong>{account.display_name}</strong> was revoked" in page
    assert "Only the owner of" in page
    assert "does not give access to any account" not in page

    expired = member_factory("tickets", expires_at=timezone.now() - timedelta(minutes=5))
    # an account they never belonged to stays unmentioned
    page = login_client(expired.user).get(reverse("accounts:select_account")).content.decode()
    assert f"Your access to <strong>{account.display_name}</strong> expired on" in page
    assert other_account.display_name not in page
