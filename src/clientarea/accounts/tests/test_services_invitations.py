from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from clientarea.accounts import permissions
from clientarea.accounts.models import Account, Invitation, Membership
from clientarea.accounts.services import (
    AccessError,
    InvitationError,
    invitation_accept,
    invitation_cancel,
    invitation_create,
    invitation_expire_due,
    invitation_resend,
)
from clientarea.accounts.tests.factories import UserFactory
from clientarea.accounts.tests.helpers import invitation_token_from_outbox
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail

pytestmark = pytest.mark.django_db


def invite(account: Account, email: str = "new@example.com", **kw: object) -> Invitation:
    kw.setdefault("permission_codes", ["invoices", "emails"])
    return invitation_create(account=account, actor=account.owner, email=email, **kw)


def test_invitation_stores_only_the_hash_of_a_32_byte_token(account: Account) -> None:
    invitation = invite(account, "New@Example.com ")
    token = invitation_token_from_outbox("new@example.com")
    assert len(token) >= 43  # token_urlsafe(32): 32 random bytes
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(Invitation.objects.filter(pk=invitation.pk).values().get())
    assert invitation.email == "new@example.com"
    assert invitation.expires_at - timezone.now() > timedelta(days=6, hours=23)
    assert invitation.expires_at - timezone.now() <= timedelta(days=7)


def test_invitation_email_names_account_inviter_permissions_and_expiry(account: Account) -> None:
    invite(account, permission_codes=["manageproducts", "tickets"])
    email = OutboxEmail.objects.get(to_email="new@example.com")
    assert email.kind == OutboxEmail.Kind.PERSONAL and email.account == account
    assert "Acme Web Studio" in email.subject
    assert "Olivia" in email.subject
    for label in ["View & Modify Product Password", "View Products & Services",
                  "Open & View Support Tickets"]:  # fmt: skip
        assert f"- {label}" in email.body_text
    assert "View & Pay Invoices" not in email.body_text
    assert "expires on" in email.body_text
    # Only the invitee gets it: never the owner or secondary contacts.
    assert OutboxEmail.objects.count() == 1


def test_invitation_is_audited(account: Account) -> None:
    invitation = invite(account)
    event = AuditEvent.objects.get(action="invitation.sent")
    assert event.account == account and event.actor == account.owner
    assert event.target_id == str(invitation.pk) and event.target_label == "new@example.com"
    assert event.changes["permissions"] == ["invoices", "emails"]


def test_inviting_someone_with_access_or_a_pending_invitation_says_so(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets")
    with pytest.raises(InvitationError, match="already has access"):
        invite(account, member.user.email.upper())
    with pytest.raises(InvitationError, match="is the owner"):
        invite(account, account.owner.email)
    invite(account, "new@example.com")
    with pytest.raises(InvitationError, match="already has a pending invitation"):
        invite(account, "NEW@example.com")
    assert Invitation.objects.count() == 1
    assert OutboxEmail.objects.count() == 1


def test_a_revoked_user_or_an_expired_invitation_can_be_invited_again(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    gone = member_factory("tickets", status=Membership.Status.REVOKED)
    invite(account, gone.user.email)
    stale = invite(account, "late@example.com")
    Invitation.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - timedelta(days=1))
    fresh = invite(account, "late@example.com")
    stale.refresh_from_db()
    assert stale.status == Invitation.Status.EXPIRED
    assert fresh.status == Invitation.Status.PENDING


def test_an_invitation_needs_a_permission_and_a_future_access_expiry(account: Account) -> None:
    with pytest.raises(InvitationError, match="at least one permission"):
        invite(account, permission_codes=["bogus"])
    with pytest.raises(InvitationError, match="future"):
        invite(account, access_expires_at=timezone.now() - timedelta(hours=1))
    assert not Invitation.objects.exists()


def test_only_the_owner_can_invite_resend_or_cancel(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    partner = member_factory(*permissions.ALL_CODES).user
    with pytest.raises(AccessError):
        invitation_create(account=account, actor=partner, email="x@example.com",
                          permission_codes=["invoices"])  # fmt: skip
    invitation = invite(account)
    with pytest.raises(AccessError):
        invitation_resend(invitation=invitation, actor=partner)
    with pytest.raises(AccessError):
        invitation_cancel(invitation=invitation, actor=partner)
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.PENDING


def test_resend_rotates_the_link_and_kills_the_old_one(account: Account) -> None:
    invitation = invite(account)
    old = invitation_token_from_outbox("new@example.com")
    invitation_resend(invitation=invitation, actor=account.owner)
    new = invitation_token_from_outbox("new@example.com")
    assert new != old
    user = UserFactory(email="new@example.com")
    with pytest.raises(InvitationError, match="not valid"):
        invitation_accept(token=old, user=user)
    invitation_accept(token=new, user=user)
    assert AuditEvent.objects.filter(action="invitation.resent").count() == 1


def test_cancel_kills_the_link(account: Account) -> None:
    invitation = invite(account)
    token = invitation_token_from_outbox("new@example.com")
    invitation_cancel(invitation=invitation, actor=account.owner)
    with pytest.raises(InvitationError, match="cancelled"):
        invitation_accept(token=token, user=UserFactory(email="new@example.com"))
    assert AuditEvent.objects.filter(action="invitation.cancelled").exists()


def test_accepting_is_single_use_and_needs_the_invited_address(account: Account) -> None:
    invite(account, access_expires_at=timezone.now() + timedelta(days=30))
    token = invitation_token_from_outbox("new@example.com")
    with pytest.raises(InvitationError, match="different email"):
        invitation_accept(token=token, user=UserFactory(email="someone@example.com"))
    user = UserFactory(email="new@example.com")
    membership = invitation_accept(token=token, user=user)
    assert membership.permissions == ["invoices", "emails"]
    assert membership.expires_at is not None
    with pytest.raises(InvitationError, match="accepted"):
        invitation_accept(token=token, user=user)
    assert AuditEvent.objects.filter(action="invitation.accepted", actor_id=user.pk).exists()
    # The owner is told; the invitee is not sent a second "you now have access" email.
    assert OutboxEmail.objects.filter(to_email=account.owner.email).count() == 1
    assert OutboxEmail.objects.filter(to_email="new@example.com").count() == 1


def test_an_expired_link_cannot_be_accepted_and_the_worker_records_the_expiry(
    account: Account,
) -> None:
    invitation = invite(account)
    token = invitation_token_from_outbox("new@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(InvitationError, match="expired"):
        invitation_accept(token=token, user=UserFactory(email="new@example.com"))
    assert invitation_expire_due() == 1
    assert invitation_expire_due() == 0
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.EXPIRED
    assert AuditEvent.objects.filter(action="invitation.expired").count() == 1
