"""The back office: staff answer in the ticket's change page, through the service layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import UserFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail
from clientarea.support.models import Attachment, Ticket, TicketMessage
from clientarea.support.services import ticket_open

from .factories import AttachmentFactory, DepartmentFactory, TicketFactory, TicketMessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    staff = UserFactory(is_staff=True, is_superuser=True, first_name="Sam", last_name="Staff")
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def dev_ticket(account: Account, member_factory: Callable[..., Membership]) -> Ticket:
    developer = member_factory("tickets", user=UserFactory(first_name="Dana", last_name="Dev"))
    return ticket_open(
        access=access_of(developer.user, account),
        department=DepartmentFactory(name="Technical Support"),
        subject="Staging down",
        priority=Ticket.Priority.HIGH,
        body="Help <b>please</b>",
    )


def change_url(ticket: Ticket) -> str:
    return reverse("admin:support_ticket_change", args=[ticket.pk])


def post_change(client: Client, ticket: Ticket, **data: Any) -> Any:
    form = {
        "status": ticket.status,
        "department": ticket.department_id,
        "priority": ticket.priority,
        "reply": "",
        "messages-TOTAL_FORMS": "0",
        "messages-INITIAL_FORMS": "0",
        **data,
    }
    return client.post(change_url(ticket), form)


def test_change_page_shows_the_thread_escaped(staff_client: Client, dev_ticket: Ticket) -> None:
    page = staff_client.get(change_url(dev_ticket)).content.decode()
    assert "Dana Dev" in page and "Staging down" in page
    assert "Help &lt;b&gt;please&lt;/b&gt;" in page
    assert 'name="reply"' in page and 'enctype="multipart/form-data"' in page


def test_staff_reply_emails_the_opener_not_the_owner(
    staff_client: Client, dev_ticket: Ticket, account: Account
) -> None:
    OutboxEmail.objects.all().delete()
    response = post_change(
        staff_client,
        dev_ticket,
        reply="Fixed: restarted PHP.",
        reply_attachments=[SimpleUploadedFile("fix.txt", b"done\n")],
    )
    assert response.status_code == 302
    dev_ticket.refresh_from_db()
    assert dev_ticket.status == Ticket.Status.ANSWERED
    message = TicketMessage.objects.get(ticket=dev_ticket, is_staff=True)
    assert message.author_name == "Sam Staff" and message.body == "Fixed: restarted PHP."
    assert message.attachments.get().original_name == "fix.txt"
    emails = list(OutboxEmail.objects.values_list("to_email", flat=True))
    assert emails == [dev_ticket.opener_email]
    assert account.owner.email not in emails
    assert AuditEvent.objects.filter(action="ticket.staff_replied", is_staff_action=True).exists()


def test_the_customer_sees_the_staff_reply(
    staff_client: Client,
    dev_ticket: Ticket,
    account: Account,
    login_client: Callable[..., Client],
) -> None:
    post_change(staff_client, dev_ticket, reply="We are on it.")
    page = login_client(dev_ticket.opener, account).get(
        reverse("support:ticket_detail", args=[dev_ticket.pk])
    )
    html = page.content.decode()
    assert "We are on it." in html and "Sam Staff" in html and "Jiinubi Support" in html
    assert "Answered" in html


def test_reply_with_a_chosen_status_and_a_department_change(
    staff_client: Client, dev_ticket: Ticket
) -> None:
    billing = DepartmentFactory(name="Billing")
    post_change(
        staff_client, dev_ticket, reply="Closing this.", status="closed", department=billing.pk
    )
    dev_ticket.refresh_from_db()
    assert dev_ticket.status == Ticket.Status.CLOSED
    assert dev_ticket.department == billing
    assert AuditEvent.objects.get(action="ticket.updated").changes == {
        "department": ["Technical Support", "Billing"]
    }


def test_status_change_without_a_reply_sends_no_email(
    staff_client: Client, dev_ticket: Ticket
) -> None:
    OutboxEmail.objects.all().delete()
    post_change(staff_client, dev_ticket, status="customer_reply")
    dev_ticket.refresh_from_db()
    assert dev_ticket.status == Ticket.Status.CUSTOMER_REPLY
    assert not OutboxEmail.objects.exists()
    assert not TicketMessage.objects.filter(is_staff=True).exists()
    assert AuditEvent.objects.get(action="ticket.updated").changes == {
        "status": ["open", "customer_reply"]
    }


def test_a_bad_staff_attachment_changes_nothing(staff_client: Client, dev_ticket: Ticket) -> None:
    response = post_change(
        staff_client,
        dev_ticket,
        reply="See attached",
        reply_attachments=[SimpleUploadedFile("a.exe", b"MZ")],
    )
    assert response.status_code == 200
    assert "this type of file is not accepted" in response.content.decode()
    assert not TicketMessage.objects.filter(is_staff=True).exists()


def test_attachments_without_a_reply_are_refused_and_nothing_is_stored(
    staff_client: Client, dev_ticket: Ticket, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored: list[str] = []
    storage: Any = Attachment._meta.get_field("file").storage
    storage.exists("x")  # the lazy default storage made, to spy on its class
    storage_class = type(getattr(storage, "_wrapped", storage))
    real_save = storage_class._save

    def spy(self: Any, name: str, content: Any) -> str:
        stored.append(name)
        return real_save(self, name, content)

    monkeypatch.setattr(storage_class, "_save", spy)
    audited = AuditEvent.objects.count()
    for reply in ("", "   "):
        response = post_change(
            staff_client,
            dev_ticket,
            status="customer_reply",
            reply=reply,
            reply_attachments=[SimpleUploadedFile("fix.txt", b"done\n")],
        )
        assert response.status_code == 200  # the form again, with the reason
        assert "Attachments are sent with a reply" in response.content.decode()
    assert stored == []  # no file written (none left behind unrecorded)
    dev_ticket.refresh_from_db()
    assert dev_ticket.status == Ticket.Status.OPEN
    assert not TicketMessage.objects.filter(is_staff=True).exists()
    assert AuditEvent.objects.count() == audited


def test_staff_cannot_add_or_delete_tickets(staff_client: Client, dev_ticket: Ticket) -> None:
    assert staff_client.get(reverse("admin:support_ticket_add")).status_code == 403
    delete = reverse("admin:support_ticket_delete", args=[dev_ticket.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    assert Ticket.objects.filter(pk=dev_ticket.pk).exists()


def test_admin_attachment_download_is_staff_only_and_safe(
    staff_client: Client, account: Account, login_client: Callable[..., Client]
) -> None:
    attachment = AttachmentFactory(
        message=TicketMessageFactory(ticket=TicketFactory(account=account)),
        original_name="x.html",
        content_type="text/html",
    )
    url = reverse("admin:support_attachment_download", args=[attachment.pk])
    response = staff_client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    customer = login_client(account.owner, account).get(url)
    assert customer.status_code == 302 and "/admin/login/" in customer["Location"]


def test_changelist_runs_a_fixed_number_of_queries(staff_client: Client, account: Account) -> None:
    url = reverse("admin:support_ticket_changelist")
    TicketFactory.create_batch(5, account=account)
    with CaptureQueriesContext(connection) as few:
        assert staff_client.get(url).status_code == 200
    TicketFactory.create_batch(45, account=account)
    with CaptureQueriesContext(connection) as many:
        assert staff_client.get(url).status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


def test_a_reply_the_service_refuses_is_not_reported_or_logged_as_saved(
    staff_client: Client, dev_ticket: Ticket, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.contrib.admin.models import LogEntry

    from clientarea.support import services

    def refuse(**kwargs: Any) -> None:
        raise services.TicketError("The ticket changed meanwhile.")

    monkeypatch.setattr(services, "ticket_reply_staff", refuse)
    response = post_change(staff_client, dev_ticket, reply="Hello")
    assert response.status_code == 302
    page = staff_client.get(response["Location"]).content.decode()
    assert "Nothing was saved: The ticket changed meanwhile." in page
    assert "changed successfully" not in page
    assert not LogEntry.objects.exists()
    assert not TicketMessage.objects.filter(is_staff=True).exists()
