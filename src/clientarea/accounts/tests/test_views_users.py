from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts import permissions
from clientarea.accounts.forms_users import _end_of_day
from clientarea.accounts.models import Account, Invitation, Membership, User
from clientarea.accounts.services import invitation_create
from clientarea.accounts.tests.factories import InvitationFactory, MembershipFactory
from clientarea.accounts.tests.helpers import confirm_long_ago, confirm_recently
from clientarea.notifications.models import OutboxEmail

pytestmark = pytest.mark.django_db


def test_user_management_is_in_the_owners_menu_only(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    page = login_client(account.owner, account).get(reverse("core:dashboard")).content.decode()
    assert "Hello, Olivia!" in page
    assert reverse("accounts:users") in page and "User Management" in page
    assert "Activity Log" in page
    partner = member_factory(*permissions.ALL_CODES).user
    page = login_client(partner, account).get(reverse("core:dashboard")).content.decode()
    assert "User Management" not in page and reverse("accounts:users") not in page
    assert "Activity Log" not in page
    assert "Contacts" in page and "Email History" in page


def test_user_list_shows_users_invitations_and_an_owner_row_without_controls(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    member = member_factory("invoices", "emails", expires_at=timezone.now() + timedelta(days=3))
    revoked = member_factory("tickets", status=Membership.Status.REVOKED)
    invitation = InvitationFactory(account=account, email="pending@example.com")
    page = login_client(account.owner, account).get(reverse("accounts:users")).content.decode()
    assert member.user.email in page and "View &amp; Pay Invoices" in page
    assert "View Email History" in page
    assert revoked.user.email in page and "Revoked" in page
    assert "pending@example.com" in page and "Olivia" in page
    assert reverse("accounts:user_edit", args=[member.pk]) in page
    assert reverse("accounts:user_revoke", args=[member.pk]) in page
    assert reverse("accounts:user_revoke", args=[revoked.pk]) not in page
    assert reverse("accounts:invitation_resend", args=[invitation.pk]) in page
    assert reverse("accounts:invitation_cancel", args=[invitation.pk]) in page
    assert "Invite a New User" in page
    owner_row = page.split('class="owner-row"')[1].split("</tr>")[0]
    assert "Owner" in owner_row and "href" not in owner_row and "<form" not in owner_row


@pytest.mark.parametrize("extra", [0, 45])
def test_user_management_queries_do_not_grow_with_the_number_of_users(
    login_client: Callable[..., Client], account: Account, extra: int
) -> None:
    def count() -> int:
        client = login_client(account.owner, account)
        client.get(reverse("accounts:users"))  # warm the session
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("accounts:users")).status_code == 200
        return len(ctx)

    MembershipFactory.create_batch(5, account=account, permissions=["invoices"])
    InvitationFactory.create_batch(5, account=account)
    five = count()
    MembershipFactory.create_batch(extra, account=account, permissions=["tickets"])
    InvitationFactory.create_batch(extra, account=account)
    assert Membership.objects.filter(account=account).count() == 5 + extra
    assert count() == five


def test_invite_needs_a_recent_password_confirmation(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = confirm_long_ago(login_client(account.owner, account))
    response = client.get(reverse("accounts:user_invite"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:confirm_password"))
    response = client.post(
        reverse("accounts:user_invite"),
        {"email": "x@example.com", "access": "all"},
    )
    assert response["Location"].startswith(reverse("accounts:confirm_password"))
    assert not Invitation.objects.exists()


def test_invite_form_has_every_permission_with_help_and_role_presets(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = confirm_recently(login_client(account.owner, account))
    page = client.get(reverse("accounts:user_invite")).content.decode()
    for words in ["Invite a New User", "All Permissions", "Choose Permissions", "Send Invite"]:
        assert words in page
    for perm in permissions.CATALOGUE:
        assert perm.label.replace("&", "&amp;") in page
        assert perm.help_text.replace("'", "&#x27;") in page
    assert 'value="invoices" checked' not in page
    preset = client.get(reverse("accounts:user_invite") + "?role=accountant").content.decode()
    # Two boxes, the "Choose Permissions" radio and "All services and domains" (the default).
    assert preset.count(" checked") == 2 + 1 + 1
    assert 'value="invoices"' in preset and 'value="emails"' in preset


def test_send_invite_queues_the_email_and_duplicates_say_so(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    client = confirm_recently(login_client(account.owner, account))
    url = reverse("accounts:user_invite")
    data = {"email": "dev@example.com", "access": "choose",
            "permissions": ["manageproducts", "managedomains", "tickets"]}  # fmt: skip
    response = client.post(url, data)
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert invitation.permissions == ["products", "manageproducts", "domains",
                                      "managedomains", "tickets"]  # fmt: skip
    assert OutboxEmail.objects.filter(to_email="dev@example.com").count() == 1
    again = client.post(url, data)
    assert again.status_code == 200
    assert "already has a pending invitation" in again.content.decode()
    member = member_factory("invoices")
    taken = client.post(url, {**data, "email": member.user.email})
    assert "already has access to this account" in taken.content.decode()
    assert Invitation.objects.count() == 1
    assert OutboxEmail.objects.count() == 1


def test_invite_form_rejects_bad_input_without_changing_anything(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = confirm_recently(login_client(account.owner, account))
    url = reverse("accounts:user_invite")
    for data, message in [
        ({"email": "not-an-email", "access": "all"}, "valid email"),
        ({"email": "a@example.com", "access": "choose"}, "Choose at least one permission"),
        ({"email": "a@example.com", "access": "all", "access_expires_on": "2001-01-01"},
         "today or a later date"),
        ({"email": "a@example.com", "access": "choose", "permissions": ["owner"]},
         "Select a valid choice"),
    ]:  # fmt: skip
        response = client.post(url, data)
        assert response.status_code == 200
        assert message in response.content.decode()
    assert not Invitation.objects.exists() and not OutboxEmail.objects.exists()


def test_owner_edits_permissions_with_recent_auth(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    member = member_factory("invoices")
    client = confirm_long_ago(login_client(account.owner, account))
    url = reverse("accounts:user_edit", args=[member.pk])
    stale = client.post(url, {"access": "choose", "permissions": ["tickets"]})
    assert stale["Location"].startswith(reverse("accounts:confirm_password"))
    confirm_recently(client)
    page = client.get(url).content.decode()
    assert (
        'value="invoices" checked' in page
        or 'checked value="invoices"' in page
        or ('name="permissions" value="invoices"' in page)
    )
    response = client.post(
        url, {"access": "choose", "permissions": ["tickets"], "access_expires_on": ""}
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.permissions == ["tickets"]
    assert OutboxEmail.objects.filter(to_email=member.user.email).exists()


def test_revoke_asks_for_confirmation_then_revokes(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    member = member_factory("invoices")
    client = login_client(account.owner, account)
    url = reverse("accounts:user_revoke", args=[member.pk])
    page = client.get(url).content.decode()
    assert "Revoke Access" in page and member.user.email in page
    member.refresh_from_db()
    assert member.status == Membership.Status.ACTIVE  # a GET changes nothing
    assert client.post(url).status_code == 302
    member.refresh_from_db()
    assert member.status == Membership.Status.REVOKED


def test_resend_and_cancel_from_user_management(
    login_client: Callable[..., Client], account: Account
) -> None:
    invitation = invitation_create(
        account=account, actor=account.owner, email="n@example.com", permission_codes=["emails"]
    )
    old_hash = invitation.token_hash
    client = confirm_recently(login_client(account.owner, account))
    assert (
        client.get(reverse("accounts:invitation_resend", args=[invitation.pk])).status_code == 405
    )
    client.post(reverse("accounts:invitation_resend", args=[invitation.pk]))
    invitation.refresh_from_db()
    assert invitation.token_hash != old_hash
    assert OutboxEmail.objects.filter(to_email="n@example.com").count() == 2
    client.post(reverse("accounts:invitation_cancel", args=[invitation.pk]))
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.CANCELLED


def test_cancel_invite_asks_for_confirmation_first(
    login_client: Callable[..., Client], account: Account
) -> None:
    """Like Revoke Access: the button opens a confirm page; only its POST cancels."""
    invitation = invitation_create(
        account=account, actor=account.owner, email="n@example.com", permission_codes=["emails"]
    )
    client = login_client(account.owner, account)
    cancel = reverse("accounts:invitation_cancel", args=[invitation.pk])
    assert f'href="{cancel}"' in client.get(reverse("accounts:users")).content.decode()
    page = client.get(cancel)
    assert page.status_code == 200 and "n@example.com" in page.content.decode()
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.PENDING
    assert client.post(cancel).status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.CANCELLED
    assert client.get(cancel)["Location"] == reverse("accounts:users")


def owner_only_posts(membership: Membership, invitation: Invitation) -> list[tuple[str, dict]]:
    return [
        (reverse("accounts:user_invite"), {"email": "evil@example.com", "access": "all"}),
        (reverse("accounts:user_edit", args=[membership.pk]),
         {"access": "all"}),
        (reverse("accounts:user_revoke", args=[membership.pk]), {}),
        (reverse("accounts:invitation_resend", args=[invitation.pk]), {}),
        (reverse("accounts:invitation_cancel", args=[invitation.pk]), {}),
    ]  # fmt: skip


def test_a_sub_account_with_every_permission_cannot_use_owner_powers(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    partner = member_factory(*permissions.ALL_CODES)
    other = member_factory("invoices")
    invitation = InvitationFactory(account=account)
    client = confirm_recently(login_client(partner.user, account))
    page = client.get(reverse("core:dashboard")).content.decode()
    assert "User Management" not in page and "Revoke Access" not in page
    assert client.get(reverse("accounts:users")).status_code == 403
    assert client.get(reverse("audit:activity")).status_code == 403
    # Forged POSTs: against another member, against themselves.
    for target in (other, partner):
        for url, data in owner_only_posts(target, invitation):
            assert client.post(url, data).status_code == 403, url
    for m in (other, partner):
        m.refresh_from_db()
        assert m.status == Membership.Status.ACTIVE
    other.refresh_from_db()
    assert other.permissions == ["invoices"]
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.PENDING
    assert Invitation.objects.count() == 1
    assert not OutboxEmail.objects.exists()
    # The owner has no membership at all: nothing to edit, revoke or take over.
    assert not Membership.objects.filter(user=account.owner).exists()
    assert Account.objects.get(pk=account.pk).owner == account.owner


def test_another_accounts_membership_and_invitation_ids_are_404(
    login_client: Callable[..., Client], account: Account, other_account: Account
) -> None:
    theirs = MembershipFactory(account=other_account, permissions=["invoices"])
    their_invitation = InvitationFactory(account=other_account)
    client = confirm_recently(login_client(account.owner, account))
    for url, data in owner_only_posts(theirs, their_invitation)[1:]:
        assert client.post(url, data).status_code == 404, url
    assert client.get(reverse("accounts:user_edit", args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Membership.Status.ACTIVE and theirs.permissions == ["invoices"]
    their_invitation.refresh_from_db()
    assert their_invitation.status == Invitation.Status.PENDING


def test_owner_user_cannot_be_managed_by_forging_their_id(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = confirm_recently(login_client(account.owner, account))
    owner: User = account.owner
    assert client.post(reverse("accounts:user_revoke", args=[owner.pk])).status_code == 404


def test_user_management_shows_who_has_two_factor(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    """ASVS 6.3.3: the owner sees which users have two-factor authentication on."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    with_2fa = member_factory("tickets")
    member_factory("invoices")
    TOTPDevice.objects.create(user=with_2fa.user, name="phone", confirmed=True)
    page = login_client(account.owner, account).get(reverse("accounts:users")).content.decode()
    row = page.split(with_2fa.user.email, 1)[1].split("</tr>", 1)[0]
    assert ">On<" in row
    assert page.count(">Off<") == 2  # the owner and the other sub-account


def test_an_absurdly_far_access_expiry_is_refused_with_a_message(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    confirm_recently(client)
    response = client.post(
        reverse("accounts:user_invite"),
        {
            "email": "far@example.com",
            "access": "choose",
            "permissions": ["tickets"],
            "access_expires_on": "9999-12-31",
        },
    )
    assert response.status_code == 200
    assert "within the next 10 years" in response.content.decode()
    assert not Invitation.objects.exists()


def test_saving_edit_permissions_unchanged_keeps_the_access_expiry(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    """A browser posts back what the form shows: a date input shows (and posts) only an
    ISO date, anything else is blanked, so the expiry must be rendered as YYYY-MM-DD."""
    expires_at = _end_of_day(date(2027, 1, 31))
    member = member_factory("invoices", expires_at=expires_at)
    client = confirm_recently(login_client(account.owner, account))
    url = reverse("accounts:user_edit", args=[member.pk])
    page = client.get(url).content.decode()
    tag = re.search(r'<input type="date" name="access_expires_on"[^>]*>', page)
    assert tag is not None
    shown = re.search(r'value="([^"]*)"', tag.group(0))
    value = shown.group(1) if shown else ""
    posted = value if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else ""  # as a browser does
    assert posted == "2027-01-31"
    response = client.post(
        url, {"access": "choose", "permissions": ["invoices"], "access_expires_on": posted}
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.expires_at == expires_at
