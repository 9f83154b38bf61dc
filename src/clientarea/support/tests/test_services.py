"""Ticket actions: under the opener's name, audited, and the staff reply goes to the opener."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.services import membership_revoke
from clientarea.accounts.tests.factories import ContactFactory, UserFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail
from clientarea.support import services
from clientarea.support.models import Attachment, Ticket, TicketMessage

from .factories import PNG, DepartmentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Any:
    return UserFactory(is_staff=True, first_name="Sam", last_name="Staff")


@pytest.fixture
def developer(member_factory: Callable[..., Membership]) -> Membership:
    return member_factory("tickets", user=UserFactory(first_name="Dana", last_name="Developer"))


def open_ticket(account: Account, opener: Any, **kwargs: Any) -> Ticket:
    defaults: dict[str, Any] = {
        "department": DepartmentFactory(name="Technical Support"),
        "subject": "Site down",
        "priority": Ticket.Priority.HIGH,
        "body": "Our site shows a 500 error.",
    }
    return services.ticket_open(access=access_of(opener, account), **{**defaults, **kwargs})


def test_ticket_is_opened_under_the_openers_own_name_and_email(
    account: Account, developer: Membership
) -> None:
    ticket = open_ticket(account, developer.user)
    assert ticket.opener == developer.user
    assert ticket.opener_name == "Dana Developer"
    assert ticket.opener_email == developer.user.email
    assert ticket.status == Ticket.Status.OPEN
    message = ticket.messages.get()
    assert (message.author_name, message.author_email, message.is_staff) == (
        "Dana Developer",
        developer.user.email,
        False,
    )
    event = AuditEvent.objects.get(action="ticket.opened")
    assert event.account == account and event.actor == developer.user
    # the acknowledgement goes to the opener only
    assert list(OutboxEmail.objects.values_list("to_email", flat=True)) == [developer.user.email]


def test_the_name_on_a_ticket_is_a_snapshot(account: Account, developer: Membership) -> None:
    ticket = open_ticket(account, developer.user)
    developer.user.first_name = "Renamed"
    developer.user.save()
    developer.user.delete()
    ticket.refresh_from_db()
    assert ticket.opener is None
    assert ticket.opener_name == "Dana Developer"
    assert ticket.messages.get().author_name == "Dana Developer"


def test_subject_whitespace_is_collapsed_and_blank_input_refused(account: Account) -> None:
    ticket = open_ticket(account, account.owner, subject="  Mail    bounces ")
    assert ticket.subject == "Mail bounces"
    with pytest.raises(services.TicketError):
        open_ticket(account, account.owner, subject="   ")
    with pytest.raises(services.TicketError):
        open_ticket(account, account.owner, body="  \n ")
    assert Ticket.objects.count() == 1


def test_inactive_department_refused(account: Account) -> None:
    closed = DepartmentFactory(name="Old", is_active=False)
    with pytest.raises(services.TicketError, match="does not take new tickets"):
        open_ticket(account, account.owner, department=closed)


def test_attachments_are_stored_under_a_random_name(account: Account) -> None:
    ticket = open_ticket(
        account,
        account.owner,
        files=[SimpleUploadedFile("../../my screen.png", PNG, content_type="text/html")],
    )
    attachment = Attachment.objects.get(message__ticket=ticket)
    assert attachment.original_name == "my screen.png"
    assert attachment.content_type == "image/png"
    assert attachment.size == len(PNG)
    assert "screen" not in attachment.file.name
    assert attachment.file.name.startswith("support/attachments/")
    assert default_storage.exists(attachment.file.name)


def test_a_failed_action_keeps_no_file_and_no_rows(account: Account, monkeypatch: Any) -> None:
    saved: list[str] = []
    real_save = default_storage.save

    def spy(name: str, content: Any, **kwargs: Any) -> str:
        result = real_save(name, content, **kwargs)
        saved.append(result)
        return result

    def boom(**kwargs: Any) -> None:
        raise RuntimeError("audit down")

    monkeypatch.setattr(default_storage, "save", spy)
    monkeypatch.setattr(services, "audit_record", boom)
    with pytest.raises(RuntimeError):
        open_ticket(account, account.owner, files=[SimpleUploadedFile("a.png", PNG)])
    assert saved and not default_storage.exists(saved[0])
    assert not Ticket.objects.exists() and not OutboxEmail.objects.exists()


def test_bad_attachment_refused_by_the_service_too(account: Account) -> None:
    with pytest.raises(ValidationError):
        open_ticket(account, account.owner, files=[SimpleUploadedFile("a.png", b"<html>")])
    assert not Ticket.objects.exists()


def test_customer_reply_sets_customer_reply_and_reopens_a_closed_ticket(
    account: Account, developer: Membership
) -> None:
    ticket = open_ticket(account, account.owner)
    services.ticket_close(ticket=ticket, access=access_of(account.owner, account))
    assert ticket.status == Ticket.Status.CLOSED
    message = services.ticket_reply_customer(
        ticket=ticket, access=access_of(developer.user, account), body="It is down again."
    )
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CUSTOMER_REPLY
    assert message.author_name == "Dana Developer"
    assert AuditEvent.objects.filter(action="ticket.replied", actor=developer.user).exists()


def test_closing_twice_is_refused(account: Account) -> None:
    ticket = open_ticket(account, account.owner)
    owner = access_of(account.owner, account)
    services.ticket_close(ticket=ticket, access=owner)
    with pytest.raises(services.TicketError, match="already closed"):
        services.ticket_close(ticket=ticket, access=owner)
    assert AuditEvent.objects.filter(action="ticket.closed").count() == 1


def staff_reply_recipients() -> set[str]:
    return set(
        OutboxEmail.objects.filter(
            subject__contains="Ticket #", body_text__contains="replied"
        ).values_list("to_email", flat=True)
    )


def test_staff_reply_to_a_sub_accounts_ticket_goes_to_them_and_support_contacts_not_the_owner(
    account: Account, developer: Membership, staff: Any
) -> None:
    ContactFactory(account=account, email="helpdesk@acme.example", email_kinds=["support"])
    ContactFactory(account=account, email="invoices@acme.example", email_kinds=["invoice"])
    ticket = open_ticket(account, developer.user)
    services.ticket_reply_staff(ticket=ticket, staff=staff, body="We restarted PHP-FPM.")
    assert staff_reply_recipients() == {developer.user.email, "helpdesk@acme.example"}
    email = OutboxEmail.objects.get(to_email=developer.user.email, body_text__contains="replied")
    assert email.kind == OutboxEmail.Kind.SUPPORT
    assert email.account == account
    assert "Hello Dana Developer" in email.body_text
    assert "We restarted PHP-FPM." in email.body_text
    assert f"/support/{ticket.pk}/" in email.body_text
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.ANSWERED
    event = AuditEvent.objects.get(action="ticket.staff_replied")
    assert event.is_staff_action and event.actor == staff


def test_staff_reply_to_the_owners_ticket_goes_to_the_owner_once(
    account: Account, staff: Any
) -> None:
    ticket = open_ticket(account, account.owner)
    services.ticket_reply_staff(ticket=ticket, staff=staff, body="Done.")
    assert list(
        OutboxEmail.objects.filter(body_text__contains="replied").values_list("to_email", flat=True)
    ) == [account.owner.email]


def test_an_opener_whose_access_was_revoked_is_not_sent_the_thread(
    account: Account, developer: Membership, staff: Any
) -> None:
    ticket = open_ticket(account, developer.user)
    membership_revoke(membership=developer, actor=account.owner)
    services.ticket_reply_staff(ticket=ticket, staff=staff, body="Secret details.")
    assert staff_reply_recipients() == {account.owner.email}


def test_staff_reply_with_an_explicit_status_and_non_staff_refused(
    account: Account, staff: Any
) -> None:
    ticket = open_ticket(account, account.owner)
    services.ticket_reply_staff(
        ticket=ticket, staff=staff, body="Closing.", status=Ticket.Status.CLOSED
    )
    assert Ticket.objects.get().status == Ticket.Status.CLOSED
    with pytest.raises(services.TicketError):
        services.ticket_reply_staff(ticket=ticket, staff=account.owner, body="I am not staff")
    assert TicketMessage.objects.filter(is_staff=True).count() == 1


def test_staff_change_department_and_status_is_audited(account: Account, staff: Any) -> None:
    ticket = open_ticket(account, account.owner)
    billing = DepartmentFactory(name="Billing")
    services.ticket_update_staff(
        ticket=ticket, staff=staff, status=Ticket.Status.ANSWERED, department=billing
    )
    ticket.refresh_from_db()
    assert ticket.department == billing and ticket.status == Ticket.Status.ANSWERED
    event = AuditEvent.objects.get(action="ticket.updated")
    assert event.changes == {
        "status": ["open", "answered"],
        "department": ["Technical Support", "Billing"],
    }
    # nothing changed: nothing recorded
    services.ticket_update_staff(ticket=ticket, staff=staff, department=billing)
    assert AuditEvent.objects.filter(action="ticket.updated").count() == 1
