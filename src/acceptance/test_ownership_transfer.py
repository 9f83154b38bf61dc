"""Ownership transfer, from both sides: what the owner, the recipient and the former
owner can do, and what an attacker (a sub-account with All Permissions, another account,
a replayed or foreign link) cannot. Cross-app (stored cards are billing's), so it lives
here rather than in accounts."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from acceptance.actors import browser, diff, outcome, post, snapshot
from clientarea.accounts import permissions
from clientarea.accounts.models import Account, Invitation, Membership, OwnershipTransfer, User
from clientarea.accounts.ownership import (
    OwnershipError,
    ownership_transfer_accept,
    ownership_transfer_by_staff,
    ownership_transfer_cancel,
    ownership_transfer_expire_due,
    ownership_transfer_start,
)
from clientarea.accounts.policy import access_for, accounts_for
from clientarea.accounts.services import (
    AccessError,
    invitation_accept,
    invitation_create,
    membership_revoke,
)
from clientarea.accounts.tests.factories import (
    AccountFactory,
    ContactFactory,
    MembershipFactory,
    UserFactory,
)
from clientarea.accounts.tests.helpers import invitation_token_from_outbox
from clientarea.audit.models import AuditEvent
from clientarea.billing.models import PaymentMethod
from clientarea.billing.tests.factories import make_payment_method
from clientarea.notifications.models import OutboxEmail
from clientarea.security.models import AccountSecurity
from clientarea.security.tests.factories import two_factor_on

pytestmark = pytest.mark.django_db

LINK_RE = re.compile(r"https?://\S+/ownership/(?P<token>[A-Za-z0-9_\-]+)/")
ALL = sorted(permissions.ALL_CODES)


def token_for(email: str) -> str:
    row = (
        OutboxEmail.objects.filter(to_email=email, body_text__contains="/ownership/")
        .order_by("-pk")
        .first()
    )
    assert row is not None, f"no transfer offer for {email}"
    match = LINK_RE.search(row.body_text)
    assert match is not None
    return match.group("token")


def start(account: Account, to: str, *, stays: bool = True, keep: bool = False) -> Any:
    return ownership_transfer_start(
        account=account,
        actor=account.owner,
        to_email=to,
        former_owner_stays=stays,
        keep_payment_methods=keep,
    )


def open_link(client: Any, token: str) -> str:
    response = client.get(reverse("accounts:ownership_transfer_link", args=[token]))
    page = reverse("accounts:ownership_transfer_page")
    assert response.status_code == 302 and response["Location"] == page
    return page


def owners_and_memberships_hold(account: Account) -> None:
    account.refresh_from_db()
    assert account.owner_id is not None
    assert not Membership.objects.filter(account=account, user_id=account.owner_id).exists()


# --- the owner's pages ------------------------------------------------------------------


def test_owner_starts_a_transfer_to_a_sub_account_from_the_page(account: Account) -> None:
    partner = MembershipFactory(account=account, permissions=ALL).user
    ContactFactory(account=account, email="bea@contacts.example", email_kinds=["general"])
    client = browser(account.owner, account)
    page = client.get(reverse("accounts:ownership_transfer"))
    assert page.status_code == 200 and b"Transfer Ownership" in page.content
    response = post(
        client,
        reverse("accounts:ownership_transfer"),
        {"member": partner.pk, "then": "leave", "keep_payment_methods": ""},
    )
    assert response.status_code == 302
    transfer = OwnershipTransfer.objects.get(account=account)
    assert transfer.status == "pending" and transfer.to_email == partner.email
    assert not transfer.former_owner_stays and not transfer.keep_payment_methods
    assert transfer.expires_at - timezone.now() > timedelta(hours=71)
    assert token_for(partner.email)  # the link, to the recipient alone
    notices = OutboxEmail.objects.filter(subject__contains="transfer of")
    assert {r.to_email for r in notices} == {account.owner.email, "bea@contacts.example"}
    assert AuditEvent.objects.filter(action="ownership_transfer.started").count() == 1
    # The page now shows the pending offer, with Cancel Transfer.
    assert b"Cancel Transfer" in client.get(reverse("accounts:ownership_transfer")).content


def test_the_hello_menu_shows_transfer_and_close_to_the_owner_only(account: Account) -> None:
    partner = MembershipFactory(account=account, permissions=ALL).user
    mine = browser(account.owner, account).get(reverse("core:dashboard")).content
    theirs = browser(partner, account).get(reverse("core:dashboard")).content
    for words in (b"Transfer Ownership", b"Close Account"):
        assert words in mine and words not in theirs


def test_sub_account_with_all_permissions_is_refused_and_changes_nothing(
    account: Account,
) -> None:
    partner = MembershipFactory(account=account, permissions=ALL).user
    make_payment_method(account)
    pending = start(account, "someone@example.org")
    client = browser(partner, account)
    before = snapshot()
    transfers = list(OwnershipTransfer.objects.values())
    forged = {
        "member": partner.pk,
        "email": partner.email,
        "then": "leave",
        "confirm": "on",
        "action": "withdraw",
        "owner": partner.pk,
    }
    for name, kwargs in (
        ("accounts:ownership_transfer", None),
        ("accounts:ownership_transfer_cancel", {"transfer_id": pending.pk}),
        ("accounts:account_close", None),
    ):
        url = reverse(name, kwargs=kwargs)
        assert outcome(post(client, url, forged)) == "forbidden", name
        if name != "accounts:ownership_transfer_cancel":
            assert outcome(client.get(url)) == "forbidden", name
    assert diff(before, snapshot()) == {}
    assert list(OwnershipTransfer.objects.values()) == transfers
    account.refresh_from_db()
    assert account.close_requested_at is None
    # The services refuse them too, whoever calls them.
    with pytest.raises(AccessError):
        ownership_transfer_start(
            account=account,
            actor=partner,
            to_email=partner.email,
            former_owner_stays=False,
            keep_payment_methods=False,
        )
    with pytest.raises(AccessError):
        ownership_transfer_cancel(transfer=pending, actor=partner)


def test_another_accounts_transfer_is_not_found(account: Account, other_account: Account) -> None:
    theirs = start(other_account, "someone@example.org")
    client = browser(account.owner, account)
    url = reverse("accounts:ownership_transfer_cancel", args=[theirs.pk])
    assert outcome(post(client, url)) == "not_found"
    theirs.refresh_from_db()
    assert theirs.status == "pending"


def test_only_one_pending_transfer_and_the_owner_cancels_it(account: Account) -> None:
    first = start(account, "one@example.org")
    with pytest.raises(OwnershipError):
        start(account, "two@example.org")
    client = browser(account.owner, account)
    post(client, reverse("accounts:ownership_transfer_cancel", args=[first.pk]))
    first.refresh_from_db()
    assert first.status == "cancelled"
    # The recipient is told, and the link admits nobody.
    assert OutboxEmail.objects.filter(to_email="one@example.org", subject__contains="cancelled")
    other = UserFactory(email="one@example.org")
    with pytest.raises(OwnershipError):
        ownership_transfer_accept(token=token_for("one@example.org"), user=other)
    start(account, "two@example.org")  # now a new one may start


# --- accepting ------------------------------------------------------------------------


def test_sub_account_accepts_and_the_former_owner_stays_with_all_permissions(
    account: Account,
) -> None:
    former = account.owner
    partner_membership = MembershipFactory(account=account, permissions=["invoices"])
    partner = partner_membership.user
    make_payment_method(account)
    start(account, partner.email, stays=True, keep=False)
    client = browser(partner, account)
    page = open_link(client, token_for(partner.email))
    assert b"Accept Ownership" in client.get(page).content
    response = post(client, page, {"owner": former.pk, "stays": "", "keep": "on"})
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.owner_id == partner.pk
    owners_and_memberships_hold(account)
    kept = Membership.objects.get(account=account, user=former)
    assert kept.status == "active" and permissions.is_all(kept.permissions)
    access = access_for(former, account.pk)
    assert access is not None and not access.is_owner
    assert not PaymentMethod.objects.filter(account=account).exists()
    assert AuditEvent.objects.filter(action="ownership_transfer.accepted").count() == 1
    assert AuditEvent.objects.filter(action="payment_method.removed").count() == 1
    assert OutboxEmail.objects.filter(to_email=former.email, subject__contains="no longer own")
    # The new owner's pages are the owner's, and the former owner is now refused them.
    assert outcome(client.get(reverse("accounts:ownership_transfer"))) == "ok"
    assert outcome(browser(former, account).get(reverse("accounts:users"))) == "forbidden"


def test_former_owner_who_leaves_has_no_access_even_in_their_old_session(
    account: Account,
) -> None:
    former = account.owner
    old_session = browser(former, account)
    assert outcome(old_session.get(reverse("core:dashboard"))) == "ok"
    newcomer = UserFactory(email="heir@example.org")
    make_payment_method(account)
    start(account, newcomer.email, stays=False, keep=True)
    ownership_transfer_accept(token=token_for(newcomer.email), user=newcomer)
    assert access_for(former, account.pk) is None
    assert account not in accounts_for(former)
    assert outcome(old_session.get(reverse("core:dashboard"))) == "access_removed"
    assert not Membership.objects.filter(account=account, user=former).exists()
    # They chose to leave the cards with the account.
    assert PaymentMethod.objects.filter(account=account).count() == 1


def test_replayed_cancelled_expired_and_unknown_links_admit_nobody(account: Account) -> None:
    heir = UserFactory(email="heir@example.org")
    start(account, heir.email)
    token = token_for(heir.email)
    ownership_transfer_accept(token=token, user=heir)
    client = browser(heir)
    # Used: refused, by the page and the service.
    assert client.get(open_link(client, token)).status_code == 410
    with pytest.raises(OwnershipError):
        ownership_transfer_accept(token=token, user=heir)
    # Expired: the page says so before the worker runs; the worker records it.
    other: Account = AccountFactory()
    start(other, heir.email)
    late = token_for(heir.email)
    OwnershipTransfer.objects.filter(account=other).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    assert client.get(open_link(client, late)).status_code == 410
    with pytest.raises(OwnershipError):
        ownership_transfer_accept(token=late, user=heir)
    assert ownership_transfer_expire_due() == 1
    assert OwnershipTransfer.objects.get(account=other).status == "expired"
    assert OutboxEmail.objects.filter(to_email=heir.email, subject__contains="expired")
    other.refresh_from_db()
    assert other.owner_id != heir.pk
    # Unknown.
    assert client.get(open_link(client, "not-a-real-token")).status_code == 404


def test_the_link_is_only_for_the_invited_address(account: Account) -> None:
    start(account, "heir@example.org")
    token = token_for("heir@example.org")
    intruder = MembershipFactory(account=account, permissions=ALL).user
    client = browser(intruder, account)
    page = open_link(client, token)
    assert client.get(page).status_code == 403
    before = snapshot()
    assert post(client, page).status_code == 403
    assert diff(before, snapshot()) == {}
    with pytest.raises(OwnershipError):
        ownership_transfer_accept(token=token, user=intruder)


def test_two_factor_required_before_accepting(account: Account) -> None:
    AccountSecurity.objects.create(account=account, require_two_factor=True)
    heir = UserFactory(email="heir@example.org")
    start(account, heir.email)
    token = token_for(heir.email)
    with pytest.raises(OwnershipError, match="two-factor"):
        ownership_transfer_accept(token=token, user=heir)
    account.refresh_from_db()
    assert account.owner_id != heir.pk
    two_factor_on(heir)
    ownership_transfer_accept(token=token, user=heir)
    account.refresh_from_db()
    assert account.owner_id == heir.pk


def test_a_person_without_a_login_creates_one_and_accepts(account: Account) -> None:
    start(account, "newcomer@example.org")
    client = browser()
    page = open_link(client, token_for("newcomer@example.org"))
    password = "a brand new passphrase, 42"
    response = post(
        client, page, {"first_name": "Nina", "password1": password, "password2": password}
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.owner.email == "newcomer@example.org"


def test_revoking_the_recipient_after_the_offer_wins(account: Account) -> None:
    membership = MembershipFactory(account=account, permissions=ALL)
    start(account, membership.user.email)
    membership_revoke(membership=membership, actor=account.owner)
    with pytest.raises(OwnershipError, match="removed your access"):
        ownership_transfer_accept(token=token_for(membership.user.email), user=membership.user)
    owners_and_memberships_hold(account)
    assert account.owner_id != membership.user_id


def test_invitations_of_the_former_owner_stay_valid(account: Account) -> None:
    invitation_create(
        account=account, actor=account.owner, email="invitee@example.org", permission_codes=ALL
    )
    invite_token = invitation_token_from_outbox("invitee@example.org")
    heir = UserFactory(email="heir@example.org")
    start(account, heir.email, stays=False)
    ownership_transfer_accept(token=token_for(heir.email), user=heir)
    # The new owner sees it in User Management; the invitee can still join.
    users_page = browser(heir, account).get(reverse("accounts:users"))
    assert b"invitee@example.org" in users_page.content
    invitee = UserFactory(email="invitee@example.org")
    invitation_accept(token=invite_token, user=invitee)
    assert access_for(invitee, account.pk) is not None
    assert Invitation.objects.get(email="invitee@example.org").status == "accepted"


def test_staff_transfer_from_the_back_office_with_a_reason(account: Account) -> None:
    staff = UserFactory(is_staff=True, is_superuser=True)
    heir = UserFactory(email="heir@example.org")
    pending = start(account, "someone@example.org")
    with pytest.raises(OwnershipError):
        ownership_transfer_by_staff(
            account=account,
            staff=staff,
            new_owner=heir,
            reason=" ",
            former_owner_stays=False,
            keep_payment_methods=False,
        )
    with pytest.raises(AccessError):
        ownership_transfer_by_staff(
            account=account,
            staff=heir,
            new_owner=heir,
            reason="x",
            former_owner_stays=False,
            keep_payment_methods=False,
        )
    former = account.owner
    ownership_transfer_by_staff(
        account=account,
        staff=staff,
        new_owner=heir,
        reason="The company was sold (ticket 1234).",
        former_owner_stays=False,
        keep_payment_methods=False,
    )
    account.refresh_from_db()
    assert account.owner_id == heir.pk
    pending.refresh_from_db()
    assert pending.status == "cancelled"
    event = AuditEvent.objects.get(action="ownership_transfer.accepted")
    assert event.is_staff_action and "sold" in str(event.changes)
    assert OutboxEmail.objects.filter(to_email=former.email, subject__contains="no longer own")
    assert OutboxEmail.objects.filter(to_email=heir.email, subject__contains="new owner")


def test_staff_transfer_page_in_the_admin(account: Account) -> None:
    staff = UserFactory(is_staff=True, is_superuser=True)
    two_factor_on(staff)
    heir = UserFactory(email="heir@example.org")
    client = browser(staff)
    from django_otp import DEVICE_ID_SESSION_KEY

    session = client.session
    session[DEVICE_ID_SESSION_KEY] = staff.totpdevice_set.first().persistent_id
    session.save()
    url = reverse("admin:accounts_account_transfer", args=[account.pk])
    assert client.get(url).status_code == 200
    response = post(
        client, url, {"new_owner_email": heir.email, "reason": "Owner passed away; probate."}
    )
    assert response.status_code == 302, response.content[:500]
    account.refresh_from_db()
    assert account.owner_id == heir.pk
    # The owner field cannot be edited directly any more.
    change = client.get(reverse("admin:accounts_account_change", args=[account.pk]))
    assert b'name="owner"' not in change.content


def test_a_user_who_is_not_staff_cannot_open_the_admin_pages(account: Account) -> None:
    client = browser(account.owner, account)
    url = reverse("admin:accounts_account_transfer", args=[account.pk])
    response = client.get(url)
    assert response.status_code in (302, 403)
    account.refresh_from_db()
    assert User.objects.filter(pk=account.owner_id).exists()


def test_a_lapsed_sub_account_accepting_does_not_revive_its_tokens(account: Account) -> None:
    """Found by the access model's explorer (depth 7): the offer's recipient is a
    sub-account whose access lapsed before the worker marked it expired; their token died
    with that access and must not come back when they become the owner."""
    from clientarea.api.models import ApiToken
    from clientarea.api.tests.helpers import api_get, make_token

    member = MembershipFactory(
        account=account, permissions=ALL, expires_at=timezone.now() + timedelta(hours=1)
    )
    token, secret = make_token(account, member.user, codes=ALL)
    start(account, member.user.email, stays=True)
    Membership.objects.filter(pk=member.pk).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert api_get(secret, "/api/v1/invoices").status_code == 401

    ownership_transfer_accept(token=token_for(member.user.email), user=member.user)
    account.refresh_from_db()
    assert account.owner_id == member.user_id
    assert api_get(secret, "/api/v1/invoices").status_code == 401
    token.refresh_from_db()
    assert token.revoked_at is not None and token.end_reason == ApiToken.EndReason.ACCESS_ENDED
