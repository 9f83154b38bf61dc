from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.permissions import ALL_CODES
from clientarea.accounts.services import invitation_create
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import email_queue, outbox_deliver_due

pytestmark = pytest.mark.django_db


def test_email_history_lists_what_was_sent_to_whom(
    login_client: Callable[..., Client],
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    email_queue(to_email="bea@example.com", to_name="Bea", subject="Invoice #12 is due",
                body="Please pay invoice 12.", kind="invoice", account=account)  # fmt: skip
    theirs = email_queue(to_email="x@example.com", subject="Globex secret", body="x",
                         account=other_account)  # fmt: skip
    outbox_deliver_due()
    client = login_client(member_factory("emails", "invoices").user, account)
    page = client.get(reverse("notifications:history")).content.decode()
    assert "Invoice #12 is due" in page and "bea@example.com" in page and "Sent" in page
    assert "Globex secret" not in page
    mine = OutboxEmail.objects.get(subject="Invoice #12 is due")
    detail = client.get(reverse("notifications:history_detail", args=[mine.pk])).content.decode()
    assert "Please pay invoice 12." in detail
    assert client.get(reverse("notifications:history_detail", args=[theirs.pk])).status_code == 404


def test_email_history_needs_the_emails_permission(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    client = login_client(member_factory("invoices").user, account)
    assert client.get(reverse("notifications:history")).status_code == 403
    assert "Email History" not in client.get(reverse("core:dashboard")).content.decode()


def test_invitation_emails_are_their_addressees_alone(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    """A personal email (here an invitation, with its one-time link) is neither listed nor
    opened for anyone but its addressee, the owner included."""
    invitation_create(account=account, actor=account.owner, email="new@example.com",
                      permission_codes=["invoices"])  # fmt: skip
    row = OutboxEmail.objects.get(to_email="new@example.com")
    assert row.kind == OutboxEmail.Kind.PERSONAL
    for viewer in (member_factory(*ALL_CODES).user, account.owner):
        client = login_client(viewer, account)
        page = client.get(reverse("notifications:history")).content.decode()
        assert "new@example.com" not in page
        detail = client.get(reverse("notifications:history_detail", args=[row.pk]))
        assert detail.status_code == 404


def test_email_history_withholds_what_the_grant_does_not_cover(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    """The issue's attack: View Email History without Open & View Support Tickets read the
    staff reply to a ticket, and the owner-only "password revealed" notices."""
    reply = email_queue(to_email=account.owner.email, subject="Ticket #7 answered",
                        body="The root password is hunter2", kind="support", account=account,
                        audience="owner", recipient_user=account.owner)  # fmt: skip
    notice = email_queue(to_email=account.owner.email, subject="Password revealed",
                         body="Dana revealed the password", kind="security", account=account,
                         audience="owner", recipient_user=account.owner)  # fmt: skip
    client = login_client(member_factory("emails").user, account)
    page = client.get(reverse("notifications:history")).content.decode()
    assert "Ticket #7 answered" not in page and "Password revealed" not in page
    for row in (reply, notice):
        response = client.get(reverse("notifications:history_detail", args=[row.pk]))
        assert response.status_code == 404
        assert b"hunter2" not in response.content
    with_tickets = login_client(member_factory("emails", "tickets").user, account)
    assert (
        b"hunter2"
        in with_tickets.get(reverse("notifications:history_detail", args=[reply.pk])).content
    )
    assert (
        with_tickets.get(reverse("notifications:history_detail", args=[notice.pk])).status_code
        == 404
    )


def test_history_queries_do_not_grow(login_client: Callable[..., Client], account: Account) -> None:
    client = login_client(account.owner, account)
    client.get(reverse("notifications:history"))

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(reverse("notifications:history")).status_code == 200
        return len(ctx)

    for i in range(5):
        email_queue(to_email=f"a{i}@example.com", subject="s", body="b", account=account)
    five = count()
    for i in range(45):
        email_queue(to_email=f"b{i}@example.com", subject="s", body="b", account=account)
    assert count() == five


def test_no_stored_value_can_break_an_email_subject(account: Account) -> None:
    """The issue's report: a carriage return in the company name made every email with
    the account name in its subject fail (BadHeaderError) and retry forever, so
    invitations silently stopped. Whatever is stored, subjects are one clean line."""
    from django.core import mail

    Account.objects.filter(pk=account.pk).update(company_name="Acme\r\nBcc: eve@example.com\x1b")
    account.refresh_from_db()
    invitation_create(account=account, actor=account.owner, email="new@example.com",
                      permission_codes=["invoices"])  # fmt: skip
    row = OutboxEmail.objects.get(to_email="new@example.com")
    assert "\r" not in row.subject and "\n" not in row.subject and "\x1b" not in row.subject
    assert outbox_deliver_due()["sent"] == 1
    assert mail.outbox[-1].to == ["new@example.com"]
    assert "Bcc" not in mail.outbox[-1].message().get("Bcc", "")


def test_a_header_that_cannot_be_sent_gives_up_at_once(account: Account) -> None:
    """Should a bad header still reach the worker, it fails for good with its error
    kept, instead of retrying forever."""
    row = email_queue(to_email="x@example.com", subject="ok", body="b", account=account)
    OutboxEmail.objects.filter(pk=row.pk).update(subject="bad\nsubject")
    assert outbox_deliver_due()["failed"] == 1
    row.refresh_from_db()
    assert row.status == OutboxEmail.Status.FAILED and "BadHeaderError" in row.last_error


def test_the_back_office_never_shows_a_link_that_is_still_usable(account: Account) -> None:
    """An invitation (or reset) waiting in the outbox during a mail outage holds a live
    link: staff see that it exists, not the link."""
    from django.test import Client

    from clientarea.accounts.tests.factories import UserFactory

    invitation_create(account=account, actor=account.owner, email="new@example.com",
                      permission_codes=["invoices"])  # fmt: skip
    row = OutboxEmail.objects.get(to_email="new@example.com")
    link = row.body_text.split("http", 1)[1].split()[0]
    staff = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    page = client.get(reverse("admin:notifications_outboxemail_change", args=[row.pk]))
    assert page.status_code == 200
    assert link not in page.content.decode() and "one-time link" in page.content.decode()
    outbox_deliver_due()
    page = client.get(reverse("admin:notifications_outboxemail_change", args=[row.pk]))
    assert "[link removed after sending]" in page.content.decode()


def test_a_queued_email_does_not_follow_a_person_to_an_old_address(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    """Staff changed a member's email (the old mailbox was lost): what was queued for the
    old address is not sent there."""
    from clientarea.notifications.services import notify

    member = member_factory("invoices")
    rows = notify(account=account, kind="invoice", template="accounts/email/access_ended",
                  context={"membership": None, "reason": "revoked"},
                  people=[member.user])  # fmt: skip
    to_member = next(r for r in rows if r.to_email == member.user.email)
    member.user.email = "new-mailbox@example.com"
    member.user.save(update_fields=["email"])
    outbox_deliver_due()
    to_member.refresh_from_db()
    assert to_member.status == OutboxEmail.Status.WITHHELD


def test_contact_addresses_show_only_to_those_who_may_see_contacts(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    from clientarea.accounts.tests.factories import ContactFactory
    from clientarea.notifications.services import notify

    ContactFactory(account=account, name="Bea", email="bea@example.com", email_kinds=["invoice"])
    rows = notify(account=account, kind="invoice", template="accounts/email/access_ended",
                  context={"membership": None, "reason": "revoked"})  # fmt: skip
    to_bea = next(r for r in rows if r.to_email == "bea@example.com")
    accountant = login_client(member_factory("invoices", "emails").user, account)
    for url in (reverse("notifications:history"),
                reverse("notifications:history_detail", args=[to_bea.pk])):  # fmt: skip
        page = accountant.get(url).content.decode()
        assert "bea@example.com" not in page and "A secondary contact" in page
    with_contacts = login_client(member_factory("invoices", "emails", "contacts").user, account)
    assert "bea@example.com" in with_contacts.get(reverse("notifications:history")).content.decode()
