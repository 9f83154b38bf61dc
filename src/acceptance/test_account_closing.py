"""Closing an account (the owner asks, staff confirm) and deleting one's own login.
Cross-app (invoices, services and domains are listed), so it lives here."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from acceptance.actors import browser, outcome, post
from clientarea.accounts import permissions
from clientarea.accounts.closing import closure_sweeps_run
from clientarea.accounts.models import Account, Invitation, Membership, User
from clientarea.accounts.ownership import (
    ClosureRefused,
    OwnershipError,
    account_close_confirm,
    account_close_request,
    ownership_transfer_start,
)
from clientarea.accounts.policy import access_for, accounts_for
from clientarea.accounts.services import AccessError, invitation_create
from clientarea.accounts.tests.factories import TEST_PASSWORD, MembershipFactory, UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.billing.models import Invoice
from clientarea.billing.services import invoice_cancel
from clientarea.billing.tests.factories import make_invoice
from clientarea.domains.models import Domain
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.models import Service
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications.models import OutboxEmail

pytestmark = pytest.mark.django_db

ALL = sorted(permissions.ALL_CODES)


def staff() -> User:
    return UserFactory(is_staff=True)


def test_unpaid_invoices_are_listed_and_block_closing(account: Account) -> None:
    invoice = make_invoice(account)
    client = browser(account.owner, account)
    page = client.get(reverse("accounts:account_close"))
    assert page.status_code == 200 and f"Invoice #{invoice.number}".encode() in page.content
    response = post(client, reverse("accounts:account_close"), {"password": TEST_PASSWORD})
    assert response.status_code == 200 and b"cannot be closed" in response.content
    account.refresh_from_db()
    assert account.close_requested_at is None
    with pytest.raises(ClosureRefused) as refused:
        account_close_request(account=account, actor=account.owner)
    assert len(refused.value.blockers) == 1
    # Cancelled by staff: closing may go ahead.
    invoice_cancel(invoice_id=invoice.pk, actor=staff())
    account_close_request(account=account, actor=account.owner)


def test_services_and_domains_are_listed_with_what_happens(account: Account) -> None:
    ServiceFactory(account=account, product_name="cPanel Business", next_due_date=date(2030, 1, 1))
    DomainFactory(account=account, name="acme-studio.com", expiry_date=date(2031, 5, 1))
    page = browser(account.owner, account).get(reverse("accounts:account_close")).content
    assert b"cPanel Business" in page and b"cancelled at the end of its period" in page
    assert b"acme-studio.com" in page and b"auto-renew is turned off" in page


def test_only_the_owner_asks_and_only_staff_confirm(account: Account) -> None:
    partner = MembershipFactory(account=account, permissions=ALL).user
    with pytest.raises(AccessError):
        account_close_request(account=account, actor=partner)
    client = browser(partner, account)
    assert outcome(
        post(client, reverse("accounts:account_close"), {"password": TEST_PASSWORD})
    ) == ("forbidden")
    account.refresh_from_db()
    assert account.close_requested_at is None
    account_close_request(account=account, actor=account.owner)
    with pytest.raises(AccessError):
        account_close_confirm(account=account, staff=account.owner)
    account.refresh_from_db()
    assert account.closed_at is None


def test_the_owner_can_withdraw_the_request(account: Account) -> None:
    client = browser(account.owner, account)
    post(client, reverse("accounts:account_close"), {"password": TEST_PASSWORD})
    account.refresh_from_db()
    assert account.close_requested_at is not None
    assert OutboxEmail.objects.filter(to_email=account.owner.email, kind="security")
    # Transfers are refused while closing is asked for.
    with pytest.raises(OwnershipError):
        ownership_transfer_start(
            account=account,
            actor=account.owner,
            to_email="x@example.org",
            former_owner_stays=True,
            keep_payment_methods=False,
        )
    post(client, reverse("accounts:account_close"), {"action": "withdraw"})
    account.refresh_from_db()
    assert account.close_requested_at is None


def test_staff_confirm_ends_every_access_and_nobody_can_select_it(
    account: Account, settings: object
) -> None:
    member: User = MembershipFactory(account=account, permissions=ALL).user
    member_session = browser(member, account)
    owner_session = browser(account.owner, account)
    assert outcome(member_session.get(reverse("core:dashboard"))) == "ok"
    invitation_create(
        account=account, actor=account.owner, email="invitee@example.org", permission_codes=ALL
    )
    service = ServiceFactory(account=account, next_due_date=timezone.localdate() + timedelta(9))
    ended = ServiceFactory(account=account, next_due_date=timezone.localdate() - timedelta(1))
    domain = DomainFactory(account=account)
    invoice = make_invoice(account)
    invoice_cancel(invoice_id=invoice.pk, actor=staff())
    account_close_request(account=account, actor=account.owner)
    with pytest.raises(OwnershipError):
        account_close_request(account=account, actor=account.owner)
    confirmer = staff()
    with pytest.raises(ClosureRefused):  # an invoice issued since blocks it again
        blocker = make_invoice(account)
        account_close_confirm(account=account, staff=confirmer)
    invoice_cancel(invoice_id=blocker.pk, actor=confirmer)
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        account_close_confirm(account=account, staff=confirmer)
    account.refresh_from_db()
    assert account.closed_at is not None and account.closed_by == confirmer
    assert account.retain_until is not None and account.retain_until.year >= date.today().year + 7
    assert Membership.objects.get(account=account, user=member).status == "revoked"
    assert Invitation.objects.get(email="invitee@example.org").status == "cancelled"
    for person in (account.owner, member):
        assert access_for(person, account.pk) is None
        assert account not in accounts_for(person)
    assert outcome(member_session.get(reverse("core:dashboard"))) != "ok"
    assert outcome(owner_session.get(reverse("core:dashboard"))) != "ok"
    switch = post(owner_session, reverse("accounts:select_account"), {"account": account.pk})
    assert switch.status_code == 404
    # Records kept: invoices and audit trail.
    assert Invoice.objects.filter(account=account).count() == 2
    assert AuditEvent.objects.filter(account=account, action="account.closed").exists()
    assert OutboxEmail.objects.filter(to_email=member.email, subject__contains="has ended")
    assert OutboxEmail.objects.filter(to_email=account.owner.email, subject__contains="is closed")
    # Domains: auto-renew off (after the commit); services: cancelled when their period ends.
    domain.refresh_from_db()
    assert domain.auto_renew is False and domain.status == Domain.Status.ACTIVE
    assert closure_sweeps_run() == 1
    ended.refresh_from_db()
    service.refresh_from_db()
    assert ended.status == Service.Status.CANCELLED
    assert service.status == Service.Status.ACTIVE


# --- the owner's own login ----------------------------------------------------------------


def test_owner_cannot_delete_their_login_while_they_own_an_open_account(
    account: Account,
) -> None:
    client = browser(account.owner)
    page = client.get(reverse("accounts:delete_login"))
    assert b"transfer or close" in page.content
    post(client, reverse("accounts:delete_login"), {"password": TEST_PASSWORD})
    account.owner.refresh_from_db()
    assert account.owner.is_active
    from clientarea.accounts.ownership import user_delete_own_login

    with pytest.raises(OwnershipError):
        user_delete_own_login(user=account.owner, password=TEST_PASSWORD)


def test_a_sub_account_deletes_their_login(account: Account) -> None:
    membership = MembershipFactory(account=account, permissions=["tickets"])
    person = membership.user
    client = browser(person, account)
    wrong = post(client, reverse("accounts:delete_login"), {"password": "not it"})
    assert wrong.status_code == 200
    person.refresh_from_db()
    assert person.is_active
    response = post(client, reverse("accounts:delete_login"), {"password": TEST_PASSWORD})
    assert response.status_code == 302
    person.refresh_from_db()
    assert not person.is_active and person.email.endswith("@deleted.invalid")
    membership.refresh_from_db()
    assert membership.status == "revoked"
    assert AuditEvent.objects.filter(action="user.deleted").exists()
    assert outcome(browser().get(reverse("core:dashboard"))) == "login"
    assert not client.login(email="", password=TEST_PASSWORD)


def test_the_former_owner_of_a_closed_account_may_delete_their_login(account: Account) -> None:
    account_close_request(account=account, actor=account.owner)
    account_close_confirm(account=account, staff=staff())
    from clientarea.accounts.ownership import user_delete_own_login

    user_delete_own_login(user=account.owner, password=TEST_PASSWORD)
    account.refresh_from_db()
    assert account.owner_id is not None  # never without its owner, even closed


def test_staff_find_the_request_and_confirm_it_in_the_back_office(account: Account) -> None:
    from django_otp import DEVICE_ID_SESSION_KEY

    from clientarea.security.tests.factories import two_factor_on

    confirmer = UserFactory(is_staff=True, is_superuser=True)
    device, _ = two_factor_on(confirmer)
    client = browser(confirmer)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    account_close_request(account=account, actor=account.owner)
    listed = client.get(reverse("admin:accounts_account_changelist") + "?closing=requested")
    assert listed.status_code == 200 and account.company_name.encode() in listed.content
    url = reverse("admin:accounts_account_close", args=[account.pk])
    assert b"Confirm closing" in client.get(url).content
    assert post(client, url).status_code == 302
    account.refresh_from_db()
    assert account.closed_at is not None and account.closed_by == confirmer
    event = AuditEvent.objects.get(action="account.closed")
    assert event.is_staff_action


def test_closing_turns_auto_renew_off_without_asking_the_registrar(
    account: Account, settings: Any
) -> None:
    """Domains stay until expiry with auto-renew off. Auto-renew is our billing setting
    (renewal invoices), not a registry command: closing never waits on the registrar."""
    from django.test import TestCase

    from clientarea.domains.tests.conftest import RecordingRegistrar

    settings.DOMAINS_REGISTRAR_DRIVER = "clientarea.domains.tests.conftest.RecordingRegistrar"
    RecordingRegistrar.reset()
    RecordingRegistrar.unavailable = True  # the registrar being down changes nothing
    domain = DomainFactory(account=account, auto_renew=True)
    account_close_request(account=account, actor=account.owner)
    with TestCase.captureOnCommitCallbacks(execute=True):
        account_close_confirm(account=account, staff=staff())
    domain.refresh_from_db()
    assert domain.auto_renew is False
    assert RecordingRegistrar.calls == []
    RecordingRegistrar.reset()


def test_staff_cannot_hand_over_an_account_whose_owner_asked_to_close_it(
    account: Account,
) -> None:
    """The closing request is the owner's: a new owner must not inherit it and have the
    account closed without ever asking."""
    from clientarea.accounts.ownership import ownership_transfer_by_staff

    account_close_request(account=account, actor=account.owner)
    buyer = UserFactory(email="buyer@example.org")
    with pytest.raises(OwnershipError):
        ownership_transfer_by_staff(account=account, staff=staff(), new_owner=buyer,
                                    reason="sold", former_owner_stays=False,
                                    keep_payment_methods=False)  # fmt: skip
    account.refresh_from_db()
    assert account.owner_id != buyer.pk


def test_an_account_is_never_handed_to_a_deleted_login(account: Account) -> None:
    from clientarea.accounts.ownership import ownership_transfer_by_staff

    gone = UserFactory(email="gone@example.org", is_active=False)
    with pytest.raises(OwnershipError):
        ownership_transfer_by_staff(account=account, staff=staff(), new_owner=gone,
                                    reason="x", former_owner_stays=False,
                                    keep_payment_methods=False)  # fmt: skip
    account.refresh_from_db()
    assert account.owner_id != gone.pk


def test_an_invitation_cannot_be_accepted_once_closing_was_asked(account: Account) -> None:
    from clientarea.accounts.services import InvitationError, invitation_accept
    from clientarea.accounts.tests.helpers import invitation_token_from_outbox

    invitation_create(account=account, actor=account.owner, email="late@example.org",
                      permission_codes=["tickets"])  # fmt: skip
    token = invitation_token_from_outbox("late@example.org")
    account_close_request(account=account, actor=account.owner)
    with pytest.raises(InvitationError):
        invitation_accept(token=token, user=UserFactory(email="late@example.org"))
    assert not Membership.objects.filter(account=account, user__email="late@example.org")
