"""Tickets over the API: the same selectors, lookups and service functions as the ticket
pages, from the attacker's side. Another account's ticket and attachment ids, a scoped
token's tickets outside its reach, a token without tickets, a dead token or creator; bad
input (a clear 400 naming the field, nothing stored or sent); what the writes do (the
receipt and the support inbox's note, as from the page; a reply shows on the page); and
query counts that do not grow."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.services import membership_revoke
from clientarea.accounts.tests.factories import UserFactory, access_of
from clientarea.api.services import token_revoke
from clientarea.audit.models import AuditEvent
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications.models import OutboxEmail
from clientarea.support import services as support_services
from clientarea.support.attachments import MAX_BYTES
from clientarea.support.models import Attachment, Ticket, TicketMessage
from clientarea.support.tests.factories import (
    PDF,
    PNG,
    AttachmentFactory,
    DepartmentFactory,
    TicketFactory,
    TicketMessageFactory,
)

from .helpers import assert_problem, make_token

pytestmark = pytest.mark.django_db
INBOX = "support-inbox@provider.example"
NOT_FOUND = "No such object, or not one this token can reach."


@pytest.fixture(autouse=True)
def _inbox(settings: Any) -> None:
    settings.SUPPORT_STAFF_EMAIL = INBOX


@pytest.fixture
def technical() -> Any:
    return DepartmentFactory(name="Technical Support")


def call(secret: str | None, method: str, path: str, body: Any = None) -> Any:
    extra: dict[str, Any] = {}
    if secret is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    data = json.dumps(body) if body is not None else ""
    return Client().generic(method, path, data, content_type="application/json", **extra)


def upload(secret: str, path: str, data: dict[str, Any]) -> Any:
    """A multipart/form-data POST (Django's test client encodes a dict with files so)."""
    return Client().post(path, data, HTTP_AUTHORIZATION=f"Bearer {secret}")


def _stored_files() -> set[str]:
    if not default_storage.exists("support/attachments"):
        return set()
    return set(default_storage.listdir("support/attachments")[1])


def _nothing_stored(files_before: set[str], tickets: int = 0, messages: int = 0) -> None:
    assert Ticket.objects.count() == tickets
    assert TicketMessage.objects.count() == messages
    assert not Attachment.objects.exists()
    assert _stored_files() == files_before
    assert not AuditEvent.objects.filter(action__startswith="ticket.").exists()
    assert not OutboxEmail.objects.filter(kind="support").exists()
    assert not OutboxEmail.objects.filter(to_email=INBOX).exists()


OPEN = {"subject": "Site down", "message": "Our site shows a 500 error."}


# --- who reaches what -----------------------------------------------------------------------


def _endpoints(ticket: Ticket, attachment: Attachment) -> list[tuple[str, str, Any]]:
    return [
        ("GET", f"/api/v1/tickets/{ticket.pk}", None),
        ("POST", f"/api/v1/tickets/{ticket.pk}/replies", {"message": "Any news?"}),
        ("POST", f"/api/v1/tickets/{ticket.pk}/close", None),
        ("GET", f"/api/v1/tickets/attachments/{attachment.pk}", None),
    ]


def _ticket_with_attachment(account: Account, **kwargs: Any) -> tuple[Ticket, Attachment]:
    ticket = TicketFactory(account=account, **kwargs)
    attachment = AttachmentFactory(message=TicketMessageFactory(ticket=ticket))
    return ticket, attachment


def _unchanged(ticket: Ticket) -> None:
    fresh = Ticket.objects.get(pk=ticket.pk)
    assert (fresh.status, fresh.updated_at) == (ticket.status, ticket.updated_at)
    assert fresh.messages.count() == 1
    assert not AuditEvent.objects.filter(action__startswith="ticket.").exists()
    assert not OutboxEmail.objects.filter(to_email=INBOX).exists()


@pytest.mark.parametrize("index", range(4))
def test_another_accounts_ticket_and_attachment_are_404_even_with_a_good_body(
    index: int, account: Account, other_account: Account
) -> None:
    ticket, attachment = _ticket_with_attachment(other_account)
    _, secret = make_token(account, codes=["tickets"])
    method, path, body = _endpoints(ticket, attachment)[index]
    assert assert_problem(call(secret, method, path, body), 404)["detail"] == NOT_FOUND
    _unchanged(ticket)
    # ... and a bad body changes nothing about that: the lookup comes first.
    if method == "POST":
        assert_problem(call(secret, method, path, {"message": ""}), 404)


@pytest.mark.parametrize("index", range(4))
def test_a_scoped_token_reaches_its_creators_tickets_and_its_items_only(
    index: int, account: Account, member_factory: Callable[..., Membership]
) -> None:
    mine, other = ServiceFactory(account=account), ServiceFactory(account=account)
    member = member_factory("tickets", "products", scope={"service": [mine.pk], "domain": []})
    _, secret = make_token(account, member.user, codes=["tickets", "products"])
    for hidden in (
        _ticket_with_attachment(account),  # the owner's, about nothing
        _ticket_with_attachment(account, service=other),  # about a service out of scope
    ):
        method, path, body = _endpoints(*hidden)[index]
        assert_problem(call(secret, method, path, body), 404)
        _unchanged(hidden[0])
    for reached in (
        _ticket_with_attachment(account, service=mine),
        _ticket_with_attachment(account, opener=member.user),
    ):
        method, path, body = _endpoints(*reached)[index]
        response = call(secret, method, path, body)
        assert response.status_code in (200, 201), response.content[:300]


def test_the_tokens_own_scope_narrows_its_creators(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    """The owner's token scoped to one service reaches the tickets about it, and the ones
    the owner opened, not the other tickets about other items."""
    mine, other = ServiceFactory(account=account), ServiceFactory(account=account)
    _, secret = make_token(
        account, codes=["tickets", "products"], scope={"service": [mine.pk], "domain": []}
    )
    about_mine = TicketFactory(account=account, service=mine)
    by_someone = member_factory("tickets").user
    about_other = TicketFactory(account=account, service=other, opener=by_someone)
    assert call(secret, "GET", f"/api/v1/tickets/{about_mine.pk}").status_code == 200
    assert_problem(call(secret, "GET", f"/api/v1/tickets/{about_other.pk}"), 404)
    listed = call(secret, "GET", "/api/v1/tickets").json()["results"]
    assert [r["id"] for r in listed] == [about_mine.pk]


@pytest.mark.parametrize("index", range(4))
def test_a_token_without_tickets_is_403(index: int, account: Account) -> None:
    ticket, attachment = _ticket_with_attachment(account)
    _, secret = make_token(account, codes=["invoices", "products", "domains"])
    method, path, body = _endpoints(ticket, attachment)[index]
    body_ = assert_problem(call(secret, method, path, body), 403, "permission_missing")
    assert "(tickets)" in body_["detail"]
    _unchanged(ticket)
    assert_problem(call(secret, "GET", "/api/v1/tickets"), 403, "permission_missing")
    assert_problem(call(secret, "POST", "/api/v1/tickets", OPEN), 403, "permission_missing")
    assert Ticket.objects.count() == 1


def test_a_creator_who_lost_tickets_takes_the_tokens_tickets_with_them(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets")
    _, secret = make_token(account, member.user, codes=["tickets"])
    Membership.objects.filter(pk=member.pk).update(permissions=["invoices"])
    assert_problem(call(secret, "POST", "/api/v1/tickets", OPEN), 403, "permission_missing")
    assert not Ticket.objects.exists()


@pytest.mark.parametrize("index", range(4))
def test_a_revoked_creator_is_401(
    index: int, account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets")
    ticket, attachment = _ticket_with_attachment(account, opener=member.user)
    method, path, body = _endpoints(ticket, attachment)[index]
    _, secret = make_token(account, member.user, codes=["tickets"])
    membership_revoke(membership=member, actor=account.owner)
    assert_problem(call(secret, method, path, body), 401)
    assert_problem(call(secret, "POST", "/api/v1/tickets", OPEN), 401)
    _unchanged(ticket)
    assert Ticket.objects.count() == 1
    assert not AuditEvent.objects.filter(action__startswith="ticket.").exists()


def test_a_revoked_token_is_401(account: Account) -> None:
    token, secret = make_token(account, codes=["tickets"])
    token_revoke(token=token, actor=account.owner)
    assert_problem(call(secret, "POST", "/api/v1/tickets", OPEN), 401, "token_revoked")
    assert not Ticket.objects.exists()


def test_a_session_never_authenticates_these_endpoints(
    account: Account, login_client: Callable[..., Client], technical: Any
) -> None:
    ticket = TicketFactory(account=account)
    client = login_client(account.owner, account)
    assert_problem(client.get("/api/v1/tickets"), 401)
    assert_problem(client.post("/api/v1/tickets", OPEN, content_type="application/json"), 401)
    assert_problem(client.post(f"/api/v1/tickets/{ticket.pk}/close"), 401)
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.OPEN


def test_ids_beyond_any_row_are_404_not_500(account: Account) -> None:
    _, secret = make_token(account, codes=["tickets"])
    for path in (f"/api/v1/tickets/{2**63}", f"/api/v1/tickets/attachments/{2**64}"):
        assert_problem(call(secret, "GET", path), 404)


# --- list and read ----------------------------------------------------------------------------


def test_list_newest_first_filters_by_status_and_pages_with_a_cursor(
    account: Account, other_account: Account
) -> None:
    mine = [TicketFactory(account=account) for _ in range(3)]
    TicketFactory(account=other_account)
    Ticket.objects.filter(pk=mine[1].pk).update(status=Ticket.Status.CLOSED)
    _, secret = make_token(account, codes=["tickets"])
    listed = call(secret, "GET", "/api/v1/tickets").json()
    assert [r["id"] for r in listed["results"]] == [t.pk for t in reversed(mine)]
    first = listed["results"][0]
    assert first["department"]["name"] == "Technical Support"
    assert first["service"] is None and first["domain"] is None
    closed = call(secret, "GET", "/api/v1/tickets?status=closed").json()["results"]
    assert [r["id"] for r in closed] == [mine[1].pk]
    for bad in ("nope", ""):
        body = assert_problem(call(secret, "GET", f"/api/v1/tickets?status={bad}"), 400)
        assert list(body["errors"]) == ["status"]
    page = call(secret, "GET", "/api/v1/tickets?page_size=2").json()
    assert [r["id"] for r in page["results"]] == [mine[2].pk, mine[1].pk]
    rest = Client().get(page["next"], HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    assert [r["id"] for r in rest["results"]] == [mine[0].pk]
    assert_problem(call(secret, "GET", "/api/v1/tickets?cursor=!!"), 400, "invalid")


def test_read_shows_the_thread_oldest_first_with_attachments(account: Account) -> None:
    ticket = TicketFactory(account=account)
    first = TicketMessageFactory(ticket=ticket, body="First")
    staff_answer = TicketMessageFactory(
        ticket=ticket, body="Staff answer", is_staff=True, author_name="Sam Staff"
    )
    attachment = AttachmentFactory(message=first, original_name="shot.png")
    _, secret = make_token(account, codes=["tickets"])
    shown = call(secret, "GET", f"/api/v1/tickets/{ticket.pk}").json()
    assert [m["id"] for m in shown["messages"]] == [first.pk, staff_answer.pk]
    assert shown["messages"][1]["is_staff"] is True
    assert "author_email" not in shown["messages"][0]
    (meta,) = shown["messages"][0]["attachments"]
    assert meta["name"] == "shot.png" and meta["content_type"] == "image/png"
    assert meta["size"] == len(PNG)
    assert meta["download_url"] == f"http://testserver/api/v1/tickets/attachments/{attachment.pk}"
    download = Client().get(meta["download_url"], HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == PNG


def test_download_has_the_pages_headers_whatever_the_client_accepts(account: Account) -> None:
    ticket = TicketFactory(account=account)
    pdf = AttachmentFactory(
        message=TicketMessageFactory(ticket=ticket),
        file=SimpleUploadedFile("x.pdf", PDF),
        original_name="invoice copy.pdf",
        content_type="application/pdf",
        size=len(PDF),
    )
    html = AttachmentFactory(
        message=TicketMessageFactory(ticket=ticket),
        file=SimpleUploadedFile("x.html", b"<script>alert(1)</script>"),
        original_name="page.html",
        content_type="text/html",
        size=25,
    )
    _, secret = make_token(account, codes=["tickets"])
    response = Client().get(
        f"/api/v1/tickets/attachments/{pdf.pk}",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
        HTTP_ACCEPT="application/pdf",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert "invoice copy.pdf" in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert "no-store" in response["Cache-Control"]
    active = call(secret, "GET", f"/api/v1/tickets/attachments/{html.pk}")
    assert active["Content-Type"] == "application/octet-stream"


def _read_queries(secret: str, path: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = call(secret, "GET", path)
    assert response.status_code == 200
    return len(queries)


def test_list_and_thread_query_counts_do_not_grow(account: Account) -> None:
    _, secret = make_token(account, codes=["tickets"])
    call(secret, "GET", "/api/v1/tickets")  # the last use is written once a minute
    ticket = TicketFactory(account=account)
    for _ in range(10):
        TicketFactory(account=account)
        AttachmentFactory(message=TicketMessageFactory(ticket=ticket))
    small_list = _read_queries(secret, "/api/v1/tickets?page_size=100")
    small_thread = _read_queries(secret, f"/api/v1/tickets/{ticket.pk}")
    for _ in range(40):
        TicketFactory(account=account)
        AttachmentFactory(message=TicketMessageFactory(ticket=ticket))
    assert _read_queries(secret, "/api/v1/tickets?page_size=100") == small_list
    assert _read_queries(secret, f"/api/v1/tickets/{ticket.pk}") == small_thread


# --- open -----------------------------------------------------------------------------------


def test_open_as_json_emails_the_creator_and_the_support_inbox_as_the_page_does(
    account: Account, member_factory: Callable[..., Membership], technical: Any
) -> None:
    member = member_factory("tickets")
    _, secret = make_token(account, member.user, codes=["tickets"])
    OutboxEmail.objects.all().delete()
    response = call(secret, "POST", "/api/v1/tickets", {**OPEN, "priority": "high"})
    assert response.status_code == 201, response.content[:300]
    shown = response.json()
    ticket = Ticket.objects.get()
    assert response["Location"] == f"http://testserver/api/v1/tickets/{ticket.pk}"
    assert shown["id"] == ticket.pk and shown["status"] == "open"
    assert shown["priority"] == "high" and shown["department"]["id"] == technical.pk
    assert [m["body"] for m in shown["messages"]] == [OPEN["message"]]
    assert ticket.opener == member.user and ticket.opener_email == member.user.email
    receipt = OutboxEmail.objects.exclude(to_email=INBOX).get(kind="support")
    assert receipt.to_email == member.user.email
    assert OutboxEmail.objects.filter(to_email=INBOX).count() == 1
    assert AuditEvent.objects.get(action="ticket.opened").actor == member.user


def test_open_about_a_service_or_domain_the_token_reaches(account: Account) -> None:
    service, domain = ServiceFactory(account=account), DomainFactory(account=account)
    _, secret = make_token(account, codes=["tickets", "products", "domains"])
    DepartmentFactory(name="Technical Support")
    about_service = call(secret, "POST", "/api/v1/tickets", {**OPEN, "service": service.pk})
    assert about_service.status_code == 201 and about_service.json()["service"] == service.pk
    about_domain = call(secret, "POST", "/api/v1/tickets", {**OPEN, "domain": domain.pk})
    assert about_domain.status_code == 201 and about_domain.json()["domain"] == domain.pk


@pytest.mark.parametrize(
    ("field", "make", "codes", "scoped"),
    [
        ("service", "other_account", ("tickets", "products"), False),
        ("domain", "other_account", ("tickets", "domains"), False),
        ("service", "out_of_scope", ("tickets", "products"), True),
        ("domain", "out_of_scope", ("tickets", "domains"), True),
        # the permission that shows the kind is needed too, as on the page
        ("service", "own", ("tickets",), False),
    ],
)
def test_open_about_an_item_out_of_reach_is_a_400_naming_the_field(
    field: str,
    make: str,
    codes: tuple[str, ...],
    scoped: bool,
    account: Account,
    other_account: Account,
    technical: Any,
) -> None:
    factory = ServiceFactory if field == "service" else DomainFactory
    in_scope = factory(account=account)
    target = factory(account=other_account if make == "other_account" else account)
    scope = {"service": [], "domain": [], field: [in_scope.pk]} if scoped else None
    _, secret = make_token(account, codes=codes, scope=scope)
    files_before = _stored_files()
    OutboxEmail.objects.all().delete()
    response = upload(
        secret,
        "/api/v1/tickets",
        {**OPEN, field: target.pk, "attachments": [SimpleUploadedFile("a.png", PNG)]},
    )
    body = assert_problem(response, 400, "invalid")
    assert body["errors"] == {field: [support_services.ABOUT_REFUSED]}
    _nothing_stored(files_before)


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"message": "x"}, "subject", "required"),
        ({**OPEN, "subject": "   "}, "subject", "Write a subject."),
        ({**OPEN, "subject": "a\u2028b"}, "subject", "Subject:"),
        ({**OPEN, "subject": "x" * 201}, "subject", "200"),
        ({**OPEN, "message": " \n "}, "message", "Write a message."),
        ({**OPEN, "message": "bell\x07"}, "message", "Message:"),
        ({**OPEN, "message": "x" * 20_001}, "message", "20000"),
        ({**OPEN, "priority": "urgent"}, "priority", "Not a priority"),
        ({**OPEN, "department": 999_999}, "department", "Choose one of the departments"),
        ({**OPEN, "department": "sales"}, "department", "integer"),
        ({**OPEN, "service": 1, "domain": 1}, "domain", "not both"),
        ({**OPEN, "service": 0}, "service", "greater than or equal to 1"),
        ({**OPEN, "subject": ["x"]}, "subject", "string"),
        ({**OPEN, "message": 0}, "message", "string"),
        ({**OPEN, "department": "1"}, "department", "integer"),
        ({**OPEN, "service": True}, "service", "integer"),
    ],
)
def test_bad_input_is_a_clear_400_naming_the_field_and_stores_nothing(
    body: dict[str, Any], field: str, says: str, account: Account, technical: Any
) -> None:
    _, secret = make_token(account, codes=["tickets", "products", "domains"])
    files_before = _stored_files()
    problem = assert_problem(call(secret, "POST", "/api/v1/tickets", body), 400, "invalid")
    assert list(problem["errors"]) == [field], problem
    assert says in problem["errors"][field][0], problem
    assert problem["detail"].startswith(f"{field}: ")
    _nothing_stored(files_before)


def test_a_department_that_takes_no_new_tickets_is_refused(account: Account) -> None:
    closed = DepartmentFactory(name="Old", is_active=False)
    _, secret = make_token(account, codes=["tickets"])
    body = assert_problem(call(secret, "POST", "/api/v1/tickets", OPEN), 400, "invalid")
    assert body["errors"] == {"department": ["No department takes new tickets at the moment."]}
    body = assert_problem(
        call(secret, "POST", "/api/v1/tickets", {**OPEN, "department": closed.pk}), 400
    )
    assert list(body["errors"]) == ["department"]
    assert not Ticket.objects.exists()


def test_a_body_that_is_not_json_is_a_400_and_another_type_a_415(account: Account) -> None:
    _, secret = make_token(account, codes=["tickets"])
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    broken = Client().post("/api/v1/tickets", "{", content_type="application/json", **auth)
    assert_problem(broken, 400)
    form = Client().post(
        "/api/v1/tickets", "subject=x", content_type="application/x-www-form-urlencoded", **auth
    )
    assert_problem(form, 415)
    assert not Ticket.objects.exists()


def test_a_form_field_beyond_the_servers_limit_is_a_400_not_a_500(
    account: Account, technical: Any, settings: Any
) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    _, secret = make_token(account, codes=["tickets"])
    response = upload(secret, "/api/v1/tickets", {**OPEN, "message": "x" * 2000})
    assert "too large" in assert_problem(response, 400)["detail"]
    assert not Ticket.objects.exists()


def test_an_attachment_part_that_is_not_a_file_is_refused(account: Account) -> None:
    ticket = TicketFactory(account=account)
    _, secret = make_token(account, codes=["tickets"])
    response = upload(
        secret, f"/api/v1/tickets/{ticket.pk}/replies", {"message": "Hi", "attachments": "{}"}
    )
    assert list(assert_problem(response, 400, "invalid")["errors"]) == ["attachments"]
    assert not TicketMessage.objects.exists()


def test_open_with_attachments_as_multipart(account: Account, technical: Any) -> None:
    _, secret = make_token(account, codes=["tickets"])
    files = [
        SimpleUploadedFile("screen.png", PNG, content_type="text/html"),
        SimpleUploadedFile("notes.txt", "Grüße\n".encode(), content_type="text/plain"),
    ]
    response = upload(secret, "/api/v1/tickets", {**OPEN, "attachments": files})
    assert response.status_code == 201, response.content[:300]
    (message,) = response.json()["messages"]
    assert [(a["name"], a["content_type"]) for a in message["attachments"]] == [
        ("screen.png", "image/png"),  # the claimed type is never trusted
        ("notes.txt", "text/plain; charset=utf-8"),
    ]
    assert Attachment.objects.count() == 2
    email = OutboxEmail.objects.get(to_email=INBOX)
    assert "2" in email.body_text


@pytest.mark.parametrize(
    ("files", "says"),
    [
        ([("run.exe", b"MZ\x90\x00")], "this type of file is not accepted"),
        ([("shot.png", b"<html><script>")], "does not look like a PNG image"),
        ([("big.png", PNG + b"\x00" * MAX_BYTES)], "the limit is"),
        ([("empty.txt", b"")], "empty"),
        ([(f"{i}.png", PNG) for i in range(4)], "at most 3 files"),
    ],
)
def test_a_refused_attachment_is_a_400_and_nothing_is_stored(
    files: list[tuple[str, bytes]], says: str, account: Account, technical: Any
) -> None:
    ticket = TicketFactory(account=account)
    TicketMessageFactory(ticket=ticket)
    _, secret = make_token(account, codes=["tickets"])
    files_before = _stored_files()
    uploads = [SimpleUploadedFile(name, data) for name, data in files]
    body = assert_problem(
        upload(secret, "/api/v1/tickets", {**OPEN, "attachments": uploads}), 400, "invalid"
    )
    assert list(body["errors"]) == ["attachments"] and says in " ".join(
        body["errors"]["attachments"]
    )
    uploads = [SimpleUploadedFile(name, data) for name, data in files]
    reply = upload(
        secret,
        f"/api/v1/tickets/{ticket.pk}/replies",
        {"message": "Log attached", "attachments": uploads},
    )
    assert says in " ".join(assert_problem(reply, 400, "invalid")["errors"]["attachments"])
    _nothing_stored(files_before, tickets=1, messages=1)
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.OPEN


# --- reply and close ------------------------------------------------------------------------


def test_a_reply_by_token_shows_on_the_page_and_reopens_a_closed_ticket(
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
) -> None:
    member = member_factory("tickets")
    ticket = TicketFactory(account=account, status=Ticket.Status.CLOSED)
    TicketMessageFactory(ticket=ticket)
    _, secret = make_token(account, member.user, codes=["tickets"])
    OutboxEmail.objects.all().delete()
    response = upload(
        secret,
        f"/api/v1/tickets/{ticket.pk}/replies",
        {"message": "Reply from our monitoring", "attachments": [SimpleUploadedFile("a.png", PNG)]},
    )
    assert response.status_code == 201, response.content[:300]
    shown = response.json()
    assert shown["author_name"] == member.user.get_full_name() and shown["is_staff"] is False
    assert [a["name"] for a in shown["attachments"]] == ["a.png"]
    assert Ticket.objects.get(pk=ticket.pk).status == Ticket.Status.CUSTOMER_REPLY
    assert OutboxEmail.objects.filter(to_email=INBOX).count() == 1
    page = login_client(account.owner, account).get(
        reverse("support:ticket_detail", args=[ticket.pk])
    )
    assert "Reply from our monitoring" in page.content.decode()
    # JSON works as well.
    again = call(secret, "POST", f"/api/v1/tickets/{ticket.pk}/replies", {"message": "More"})
    assert again.status_code == 201 and again.json()["attachments"] == []


def test_an_empty_reply_is_a_400_naming_the_message(account: Account) -> None:
    ticket = TicketFactory(account=account)
    _, secret = make_token(account, codes=["tickets"])
    for body in ({}, {"message": ""}, {"message": "  \n"}):
        problem = assert_problem(
            call(secret, "POST", f"/api/v1/tickets/{ticket.pk}/replies", body), 400, "invalid"
        )
        assert list(problem["errors"]) == ["message"]
    assert not TicketMessage.objects.exists()


def test_close_then_close_again_is_a_conflict(account: Account) -> None:
    ticket = TicketFactory(account=account)
    _, secret = make_token(account, codes=["tickets"])
    closed = call(secret, "POST", f"/api/v1/tickets/{ticket.pk}/close")
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    again = assert_problem(call(secret, "POST", f"/api/v1/tickets/{ticket.pk}/close"), 409)
    assert again["detail"] == "This ticket is already closed."
    assert again["code"] == "already_closed"
    assert AuditEvent.objects.filter(action="ticket.closed").count() == 1


def test_closed_since_the_lookup_is_the_services_refusal(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closed by someone else between the lookup and the service's lock: the service's
    own refusal, a 400 with its sentence, and nothing recorded twice."""
    ticket = TicketFactory(account=account)
    _, secret = make_token(account, codes=["tickets"])
    real = support_services._lock

    def closed_first(row: Ticket) -> Ticket:
        Ticket.objects.filter(pk=row.pk).update(status=Ticket.Status.CLOSED)
        return real(row)

    monkeypatch.setattr(support_services, "_lock", closed_first)
    body = assert_problem(call(secret, "POST", f"/api/v1/tickets/{ticket.pk}/close"), 400)
    assert body["detail"] == "This ticket is already closed." and body["code"] == "refused"
    assert not AuditEvent.objects.filter(action="ticket.closed").exists()


def test_a_token_revoked_while_its_request_runs_changes_nothing(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service asks the token again (TokenGrant.current): a token revoked between
    authentication and the reply reaches nothing."""
    from clientarea.api.models import ApiToken

    ticket = TicketFactory(account=account)
    token, secret = make_token(account, codes=["tickets"])
    real = support_services._lock

    def revoke_first(row: Ticket) -> Ticket:
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=token.created_at)
        return real(row)

    monkeypatch.setattr(support_services, "_lock", revoke_first)
    response = call(secret, "POST", f"/api/v1/tickets/{ticket.pk}/replies", {"message": "x"})
    assert_problem(response, 404)
    assert not TicketMessage.objects.exists()


def test_a_token_revoked_while_it_opens_a_ticket_opens_none(
    account: Account, technical: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clientarea.api.models import ApiToken

    token, secret = make_token(account, codes=["tickets"])
    real = support_services.tickets_require

    def revoke_first(access: Any) -> Any:
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=token.created_at)
        return real(access)

    monkeypatch.setattr(support_services, "tickets_require", revoke_first)
    assert_problem(call(secret, "POST", "/api/v1/tickets", OPEN), 404)
    assert not Ticket.objects.exists() and not OutboxEmail.objects.filter(to_email=INBOX)


# --- the services' own rule for "about" (support's tests cannot make services or domains) ---


@pytest.mark.parametrize("kind", ["service", "domain"])
def test_the_service_refuses_about_an_item_out_of_reach(
    kind: str,
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
    technical: Any,
) -> None:
    factory = ServiceFactory if kind == "service" else DomainFactory
    mine, other, foreign = (
        factory(account=account),
        factory(account=account),
        factory(account=other_account),
    )
    scoped = member_factory(
        "tickets", "products", "domains", scope={"service": [], "domain": [], kind: [mine.pk]}
    )
    blind = member_factory("tickets")
    refusals = [
        (access_of(account.owner, account), foreign.pk),
        (access_of(scoped.user, account), other.pk),
        (access_of(blind.user, account), mine.pk),  # without the permission of its kind
    ]
    for access, pk in refusals:
        with pytest.raises(support_services.TicketError) as caught:
            support_services.ticket_open(
                access=access,
                department=technical,
                subject="Down",
                priority="low",
                body="Help",
                about=(kind, pk),
            )
        assert caught.value.field == "about"
    assert not Ticket.objects.exists() and not OutboxEmail.objects.filter(to_email=INBOX)
    ticket = support_services.ticket_open(
        access=access_of(scoped.user, account),
        department=technical,
        subject="Down",
        priority="low",
        body="Help",
        about=(kind, mine.pk),
    )
    assert getattr(ticket, f"{kind}_id") == mine.pk


@pytest.mark.parametrize("index", range(4))
def test_a_scoped_token_never_reaches_its_creators_ticket_about_another_item(
    index: int, account: Account
) -> None:
    """Found by an attacker-side review: the owner's token limited to one service read
    (and answered, and downloaded from) the owner's own ticket about another service,
    and its staff reply in Email History. The scope rules: only the creator's tickets
    about no item, and tickets about an item in scope."""
    mine, other = ServiceFactory(account=account), ServiceFactory(account=account)
    _, secret = make_token(
        account,
        codes=["tickets", "products", "emails"],
        scope={"service": [mine.pk], "domain": []},
    )
    secret_ticket, attachment = _ticket_with_attachment(
        account, opener=account.owner, service=other
    )
    method, path, body = _endpoints(secret_ticket, attachment)[index]
    assert_problem(call(secret, method, path, body), 404)
    _unchanged(secret_ticket)
    about_nothing, kept = _ticket_with_attachment(account, opener=account.owner)
    method, path, body = _endpoints(about_nothing, kept)[index]
    assert call(secret, method, path, body).status_code in (200, 201)


def test_a_scoped_tokens_email_history_leaves_out_support_about_other_items(
    account: Account,
) -> None:
    mine, other = ServiceFactory(account=account), ServiceFactory(account=account)
    _, secret = make_token(
        account, codes=["tickets", "emails"], scope={"service": [mine.pk], "domain": []}
    )
    replies = {}
    for label, item in (("mine", mine), ("other", other), ("none", None)):
        ticket = TicketFactory(account=account, opener=account.owner, service=item)
        support_services.ticket_reply_staff(
            ticket=ticket, staff=UserFactory(is_staff=True), body=f"Reply {label}"
        )
        replies[label] = OutboxEmail.objects.filter(
            kind=OutboxEmail.Kind.SUPPORT, to_email=account.owner.email
        ).latest("pk")
    assert (replies["other"].about_kind, replies["other"].about_id) == ("service", other.pk)
    listed = {r["id"] for r in call(secret, "GET", "/api/v1/emails").json()["results"]}
    assert replies["mine"].pk in listed and replies["none"].pk in listed
    assert replies["other"].pk not in listed
    assert_problem(call(secret, "GET", f"/api/v1/emails/{replies['other'].pk}"), 404)
    # The owner's own session, unlimited, still reads all three.
    _, whole = make_token(account, codes=["tickets", "emails"])
    everything = {r["id"] for r in call(whole, "GET", "/api/v1/emails").json()["results"]}
    assert {e.pk for e in replies.values()} <= everything
