"""The customer pages: open, list, view, reply, close, download; escaping; query counts."""

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
from clientarea.accounts.tests.factories import UserFactory
from clientarea.support.models import Attachment, Ticket

from .factories import (
    PDF,
    PNG,
    AttachmentFactory,
    DepartmentFactory,
    TicketFactory,
    TicketMessageFactory,
)

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def developer(member_factory: Callable[..., Membership]) -> Membership:
    return member_factory("tickets", user=UserFactory(first_name="Dana", last_name="Developer"))


@pytest.fixture
def technical() -> Any:
    return DepartmentFactory(name="Technical Support")


def open_form(department: Any, **extra: Any) -> dict[str, Any]:
    return {
        "department": department.pk,
        "subject": "Staging is down",
        "priority": "high",
        "message": "Blank page since the upgrade.",
        **extra,
    }


def test_a_ticket_opened_by_a_sub_account_shows_their_name(
    login_client: Callable[..., Client], account: Account, developer: Membership, technical: Any
) -> None:
    client = login_client(developer.user, account)
    response = client.post(reverse("support:ticket_open"), open_form(technical))
    ticket = Ticket.objects.get()
    assert response["Location"] == reverse("support:ticket_detail", args=[ticket.pk])
    page = client.get(response["Location"]).content.decode()
    assert "Dana Developer" in page
    assert developer.user.email in page
    # the owner sees who opened it too, in the list and the thread
    owner = login_client(account.owner, account)
    listing = owner.get(reverse("support:ticket_list")).content.decode()
    assert "Dana Developer" in listing and "Staging is down" in listing
    assert "Dana Developer" in owner.get(response["Location"]).content.decode()


def test_forged_fields_are_ignored(
    login_client: Callable[..., Client],
    account: Account,
    other_account: Account,
    developer: Membership,
    technical: Any,
) -> None:
    client = login_client(developer.user, account)
    client.post(
        reverse("support:ticket_open"),
        open_form(
            technical,
            account=other_account.pk,
            status="closed",
            opener=other_account.owner.pk,
            opener_name="Somebody Else",
            opener_email="else@example.com",
        ),
    )
    ticket = Ticket.objects.get()
    assert ticket.account == account
    assert ticket.status == Ticket.Status.OPEN
    assert (ticket.opener, ticket.opener_name) == (developer.user, "Dana Developer")


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"subject": ""}, "This field is required."),
        ({"message": "   "}, "This field is required."),
        ({"department": "999999"}, "Choose one of the departments listed."),
        ({"priority": "urgent!!"}, "Select a valid choice."),
        ({"subject": "Line one\nBcc: victim@example.com"}, "Remove the line break"),
        ({"subject": "Invoice \u202egnp.exe"}, "Remove the line break or control character"),
        ({"message": "Hello\x1b[2J there"}, "Remove the control character"),
    ],
)
def test_bad_input_re_renders_with_a_message_and_changes_nothing(
    changes: dict[str, str],
    error: str,
    login_client: Callable[..., Client],
    account: Account,
    technical: Any,
) -> None:
    client = login_client(account.owner, account)
    response = client.post(reverse("support:ticket_open"), {**open_form(technical), **changes})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Ticket.objects.exists()


def test_inactive_department_is_not_offered(
    login_client: Callable[..., Client], account: Account, technical: Any
) -> None:
    old = DepartmentFactory(name="Legacy Desk", is_active=False)
    client = login_client(account.owner, account)
    assert "Legacy Desk" not in client.get(reverse("support:ticket_open")).content.decode()
    response = client.post(reverse("support:ticket_open"), open_form(old))
    assert "Choose one of the departments listed." in response.content.decode()


def test_ticket_text_is_shown_escaped(
    login_client: Callable[..., Client], account: Account, technical: Any
) -> None:
    client = login_client(account.owner, account)
    client.post(
        reverse("support:ticket_open"),
        open_form(
            technical,
            subject=XSS,
            message=XSS,
            attachments=[SimpleUploadedFile(f"{XSS}.txt", b"log")],
        ),
    )
    ticket = Ticket.objects.get()
    for url in (reverse("support:ticket_list"), reverse("support:ticket_detail", args=[ticket.pk])):
        page = client.get(url).content.decode()
        assert "<script>" not in page and "<img src=x" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_upload_and_download_an_attachment_with_safe_headers(
    login_client: Callable[..., Client], account: Account, developer: Membership, technical: Any
) -> None:
    client = login_client(developer.user, account)
    files = [
        SimpleUploadedFile('screen "1".png', PNG, content_type="text/html"),
        SimpleUploadedFile("contract.pdf", PDF),
    ]
    response = client.post(reverse("support:ticket_open"), open_form(technical, attachments=files))
    assert response.status_code == 302
    png, pdf = Attachment.objects.order_by("id")
    page = client.get(response["Location"]).content.decode()
    assert reverse("support:attachment_download", args=[png.pk]) in page
    download = client.get(reverse("support:attachment_download", args=[png.pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PNG
    assert download["Content-Type"] == "image/png"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Disposition"] == 'attachment; filename="screen \\"1\\".png"'
    assert "sandbox" in download["Content-Security-Policy"]
    assert client.get(reverse("support:attachment_download", args=[pdf.pk]))["Content-Type"] == (
        "application/pdf"
    )


def test_unicode_and_header_breaking_filenames_are_escaped_in_the_download(
    login_client: Callable[..., Client], account: Account
) -> None:
    attachment = AttachmentFactory(
        message=TicketMessageFactory(ticket=TicketFactory(account=account)),
        original_name="Grüße\r\nSet-Cookie: x=1.png",
    )
    client = login_client(account.owner, account)
    download = client.get(reverse("support:attachment_download", args=[attachment.pk]))
    disposition = download["Content-Disposition"]
    assert disposition.startswith("attachment; filename*=utf-8''")
    assert "\r" not in disposition and "\n" not in disposition
    assert "x" not in download.cookies


def test_a_stored_type_outside_the_safe_list_is_served_as_octet_stream(
    login_client: Callable[..., Client], account: Account
) -> None:
    attachment = AttachmentFactory(
        message=TicketMessageFactory(ticket=TicketFactory(account=account)),
        original_name="page.html",
        content_type="text/html",
    )
    client = login_client(account.owner, account)
    download = client.get(reverse("support:attachment_download", args=[attachment.pk]))
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"].startswith("attachment;")


def test_a_disguised_attachment_is_refused_with_a_form_error(
    login_client: Callable[..., Client], account: Account, technical: Any
) -> None:
    client = login_client(account.owner, account)
    html = SimpleUploadedFile("cat.png", b"<html><script>alert(1)</script>", "image/png")
    response = client.post(reverse("support:ticket_open"), open_form(technical, attachments=[html]))
    assert response.status_code == 200
    assert "does not look like a PNG image" in response.content.decode()
    assert not Ticket.objects.exists() and not Attachment.objects.exists()


def test_too_many_attachments_refused(
    login_client: Callable[..., Client], account: Account, technical: Any
) -> None:
    client = login_client(account.owner, account)
    files = [SimpleUploadedFile(f"{i}.txt", b"x") for i in range(4)]
    response = client.post(reverse("support:ticket_open"), open_form(technical, attachments=files))
    assert "Attach at most 3 files to one message." in response.content.decode()
    assert not Ticket.objects.exists()


def test_reply_then_close_from_the_ticket_page(
    login_client: Callable[..., Client], account: Account, developer: Membership
) -> None:
    ticket = TicketFactory(account=account, status=Ticket.Status.ANSWERED)
    TicketMessageFactory(ticket=ticket)
    client = login_client(developer.user, account)
    client.post(
        reverse("support:ticket_reply", args=[ticket.pk]),
        {"message": "Still broken", "attachments": [SimpleUploadedFile("trace.log", b"boom\n")]},
    )
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CUSTOMER_REPLY
    reply = ticket.messages.order_by("-id").first()
    assert reply.author == developer.user and reply.attachments.count() == 1
    page = client.get(reverse("support:ticket_detail", args=[ticket.pk])).content.decode()
    assert "Still broken" in page and "Customer-Reply" in page and "trace.log" in page
    response = client.post(reverse("support:ticket_close", args=[ticket.pk]), follow=True)
    assert f"Ticket #{ticket.pk} was closed." in response.content.decode()
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CLOSED
    again = client.post(reverse("support:ticket_close", args=[ticket.pk]), follow=True)
    assert "This ticket is already closed." in again.content.decode()


def test_an_empty_reply_is_refused_with_a_message(
    login_client: Callable[..., Client], account: Account
) -> None:
    ticket = TicketFactory(account=account)
    client = login_client(account.owner, account)
    response = client.post(reverse("support:ticket_reply", args=[ticket.pk]), {"message": " "})
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert ticket.messages.count() == 0


def test_list_filters_by_status_and_paginates(
    login_client: Callable[..., Client], account: Account
) -> None:
    TicketFactory.create_batch(3, account=account, status=Ticket.Status.CLOSED, subject="Old one")
    TicketFactory.create_batch(22, account=account, status=Ticket.Status.OPEN, subject="Fresh")
    client = login_client(account.owner, account)
    closed = client.get(reverse("support:ticket_list"), {"status": "closed"}).content.decode()
    assert closed.count("Old one") == 3 and "Fresh" not in closed
    first = client.get(reverse("support:ticket_list"), {"status": "open"}).content.decode()
    assert "Page 1 of 2" in first and "?status=open&amp;page=2" in first
    bogus = client.get(reverse("support:ticket_list"), {"status": "<x>", "page": "zz"})
    assert bogus.status_code == 200


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_ticket_list_runs_a_fixed_number_of_queries(
    login_client: Callable[..., Client], account: Account, developer: Membership
) -> None:
    client = login_client(developer.user, account)
    url = reverse("support:ticket_list")
    departments = [DepartmentFactory(name=f"Desk {i}") for i in range(5)]
    for i in range(5):
        TicketFactory(account=account, department=departments[i % 5])
    few = count_queries(client, url)
    for i in range(45):
        TicketFactory(account=account, department=departments[i % 5], opener=developer.user)
    assert count_queries(client, url) == few


def test_ticket_thread_runs_a_fixed_number_of_queries(
    login_client: Callable[..., Client], account: Account
) -> None:
    ticket = TicketFactory(account=account)
    client = login_client(account.owner, account)
    url = reverse("support:ticket_detail", args=[ticket.pk])
    for _ in range(2):
        AttachmentFactory(message=TicketMessageFactory(ticket=ticket))
    few = count_queries(client, url)
    for _ in range(20):
        AttachmentFactory(message=TicketMessageFactory(ticket=ticket))
    assert count_queries(client, url) == few


def test_menu_entry_and_dashboard_tile_follow_the_permission(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
    developer: Membership,
) -> None:
    TicketFactory.create_batch(2, account=account)
    TicketFactory(account=account, status=Ticket.Status.CLOSED)
    page = login_client(developer.user, account).get(reverse("core:dashboard")).content.decode()
    assert f'href="{reverse("support:ticket_list")}">Support</a>' in page
    assert "Open tickets" in page
    assert '<span class="tile-count">2</span><span class="tile-label">Open tickets' in page
    without = member_factory("invoices")
    page = login_client(without.user, account).get(reverse("core:dashboard")).content.decode()
    assert "Open tickets" not in page and ">Support</a>" not in page


def test_the_emails_of_a_ticket_show_markup_as_typed_not_escaped(
    login_client: Callable[..., Client], account: Account, developer: Membership, technical: Any
) -> None:
    """Plain-text emails are never HTML-escaped: `&lt;img` would be what the reader sees."""
    from clientarea.notifications.models import OutboxEmail
    from clientarea.support.services import ticket_reply_staff

    client = login_client(developer.user, account)
    client.post(reverse("support:ticket_open"), open_form(technical, subject=XSS, message=XSS))
    ticket = Ticket.objects.get()
    ticket_reply_staff(ticket=ticket, staff=UserFactory(is_staff=True), body=f"Re: {XSS} & co")
    rows = list(OutboxEmail.objects.filter(to_email=developer.user.email).order_by("pk"))
    assert len(rows) == 2
    for row in rows:
        assert row.subject == f"[Ticket #{ticket.pk}] {XSS}"
        assert "&lt;" not in row.body_text and "&amp;" not in row.body_text
    assert f"Re: {XSS} & co" in rows[1].body_text
