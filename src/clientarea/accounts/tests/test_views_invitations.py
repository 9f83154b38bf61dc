"""The page an invitation link opens, and the full sub-account journey."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.middleware import SESSION_ACCOUNT_KEY
from clientarea.accounts.models import Account, Invitation, Membership, User
from clientarea.accounts.services import invitation_cancel, invitation_create
from clientarea.accounts.tests.factories import TEST_PASSWORD, MembershipFactory, UserFactory
from clientarea.accounts.tests.helpers import (
    LINK_RE,
    confirm_recently,
    invitation_token_from_outbox,
    open_invitation,
)
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import outbox_deliver_due

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-long-and-unusual-invitee-passphrase"


def invite(account: Account, email: str = "new@example.com") -> str:
    invitation_create(
        account=account, actor=account.owner, email=email, permission_codes=["invoices"]
    )
    return invitation_token_from_outbox(email)


def accept_url(token: str) -> str:
    return reverse("accounts:invitation_accept", args=[token])


PAGE = "/invitation/accept/"


def test_a_new_person_sets_name_and_password_and_is_logged_in(
    client: Client, account: Account
) -> None:
    token = invite(account)
    assert open_invitation(client, token) == PAGE
    page = client.get(PAGE).content.decode()
    assert "Acme Web Studio" in page and "View &amp; Pay Invoices" in page
    weak = client.post(PAGE, {"first_name": "Nia", "password1": "password",
                              "password2": "password"})  # fmt: skip
    assert weak.status_code == 200 and "errorlist" in weak.content.decode()
    mismatch = client.post(PAGE, {"first_name": "Nia", "password1": NEW_PASSWORD,
                                  "password2": NEW_PASSWORD + "x"})  # fmt: skip
    assert "do not match" in mismatch.content.decode()
    assert not User.objects.filter(email="new@example.com").exists()
    response = client.post(
        PAGE,
        {"first_name": "Nia", "last_name": "New", "password1": NEW_PASSWORD,
         "password2": NEW_PASSWORD},
    )  # fmt: skip
    assert response["Location"] == reverse("core:dashboard")
    user = User.objects.get(email="new@example.com")
    assert user.first_name == "Nia" and user.check_password(NEW_PASSWORD)
    assert client.session[SESSION_ACCOUNT_KEY] == account.pk
    assert client.get(reverse("core:dashboard")).status_code == 200


def test_a_person_with_a_login_signs_in_and_the_account_joins_their_switcher(
    client: Client, account: Account, other_account: Account
) -> None:
    person = UserFactory(email="dev@example.com")
    MembershipFactory(account=other_account, user=person, permissions=["tickets"])
    token = invite(account, "dev@example.com")
    page = client.get(open_invitation(client, token)).content.decode()
    assert "Log in to accept" in page and 'name="password1"' not in page
    # The login link brings them back to the token-less page, not to the link.
    assert f"?next={PAGE}" in page
    # Anonymous POSTs cannot create a second login for the address.
    forged = client.post(PAGE, {"first_name": "X", "password1": NEW_PASSWORD,
                                "password2": NEW_PASSWORD})  # fmt: skip
    assert forged.status_code == 200
    assert User.objects.filter(email="dev@example.com").count() == 1
    assert not Membership.objects.filter(account=account).exists()
    # Logging in keeps the link's token in the session.
    login = {"username": "dev@example.com", "password": TEST_PASSWORD, "next": PAGE}
    assert client.post(reverse("accounts:login"), login)["Location"] == PAGE
    assert "Accept Invitation" in client.get(PAGE).content.decode()
    assert client.post(PAGE)["Location"] == reverse("core:dashboard")
    switcher = client.get(reverse("accounts:select_account")).content.decode()
    assert "Acme Web Studio" in switcher and "Globex Ltd" in switcher


def test_a_logged_in_user_with_another_email_is_refused_with_an_explanation(
    client: Client, account: Account
) -> None:
    token = invite(account)
    client.force_login(UserFactory(email="someone.else@example.com"))
    open_invitation(client, token)
    for response in (client.get(PAGE), client.post(PAGE)):
        assert response.status_code == 403
        page = response.content.decode()
        assert "different email address" in page
        assert "Acme Web Studio" not in page
    assert not Membership.objects.filter(account=account).exists()
    assert Invitation.objects.get().status == Invitation.Status.PENDING


@pytest.mark.parametrize(
    "case, status, words",
    [
        ("expired", 410, "has expired"),
        ("used", 410, "already used"),
        ("cancelled", 410, "was cancelled"),
        ("resent_old", 404, "not valid"),
        ("unknown", 404, "not valid"),
    ],
)
def test_unusable_links_say_why_and_nothing_about_the_account(
    client: Client, account: Account, case: str, status: int, words: str
) -> None:
    token = invite(account)
    invitation = Invitation.objects.get()
    if case == "expired":
        Invitation.objects.filter(pk=invitation.pk).update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )
    elif case == "used":
        person = UserFactory(email="new@example.com")
        client.force_login(person)
        client.post(open_invitation(client, token))
        client.logout()
    elif case == "cancelled":
        invitation_cancel(invitation=invitation, actor=account.owner)
    elif case == "resent_old":
        confirm_recently(client)
        owner_client = Client()
        owner_client.force_login(account.owner)
        session = owner_client.session
        session[SESSION_ACCOUNT_KEY] = account.pk
        session.save()
        owner_client.post(reverse("accounts:invitation_resend", args=[invitation.pk]))
        assert invitation_token_from_outbox("new@example.com") != token
    else:
        token = "x" * 43
    opened = client.get(accept_url(token), follow=True)
    assert opened.redirect_chain == [(PAGE, 302)]
    for response in (opened, client.get(PAGE), client.post(PAGE)):
        assert response.status_code == status
        page = response.content.decode()
        assert words in page
        assert "Acme Web Studio" not in page and "Olivia" not in page
        assert "Invoices" not in page


def test_full_journey_invite_email_accept_limited_access_revoke(
    login_client: Callable[..., Client], account: Account
) -> None:
    # The owner invites from User Management.
    owner = confirm_recently(login_client(account.owner, account))
    response = owner.post(
        reverse("accounts:user_invite"),
        {"email": "accountant@example.com", "access": "choose",
         "permissions": ["invoices", "emails"]},
    )  # fmt: skip
    assert response.status_code == 302
    # The email is delivered by the worker; the link is read from it.
    assert outbox_deliver_due()["sent"] == 1
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["accountant@example.com"]
    match = LINK_RE.search(mail.outbox[0].body)
    assert match is not None
    token = match.group("token")
    # After delivery the stored copy no longer holds the link: only its hash is kept.
    stored = OutboxEmail.objects.get(to_email="accountant@example.com")
    assert token not in stored.body_text and "link removed" in stored.body_text
    # The invitee sets a password and lands in the account.
    invitee = Client()
    invitee.post(
        open_invitation(invitee, token),
        {"first_name": "Aidan", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert invitee.get(reverse("core:dashboard")).status_code == 200
    # They see exactly what was granted.
    assert invitee.get(reverse("notifications:history")).status_code == 200
    for url in (reverse("accounts:users"), reverse("accounts:contacts"),
                reverse("accounts:account_profile"), reverse("audit:activity")):  # fmt: skip
        assert invitee.get(url).status_code == 403, url
    menu = invitee.get(reverse("core:dashboard")).content.decode()
    assert "Email History" in menu and "User Management" not in menu and "Contacts" not in menu
    # The owner revokes; the invitee's very next request is refused.
    membership = Membership.objects.get(account=account, user__email="accountant@example.com")
    owner.post(reverse("accounts:user_revoke", args=[membership.pk]))
    refused = invitee.get(reverse("notifications:history"))
    assert refused.status_code == 302
    assert refused["Location"] == reverse("accounts:access_removed")
    assert invitee.get(reverse("core:dashboard")).status_code != 200
