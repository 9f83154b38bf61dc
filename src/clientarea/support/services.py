"""State-changing actions on support tickets. Each is one transaction that also writes its
audit event and queues its email.

Attachments are written to storage *before* that transaction (``attachments_store``):
the store may be another machine (an S3-compatible bucket), and no outside system is
called inside a transaction or under the ticket's row lock. If the store fails, nothing
is saved or sent; if the transaction fails, the files just written are deleted again,
after its rollback. A crash between the two leaves at most an object no row names (its
name is random, so nobody can reach it)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import models, transaction
from django.http import HttpRequest
from django.utils import timezone

from clientarea.accounts.models import User
from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import Access, NotPermitted, OutOfReach, is_owner, may
from clientarea.accounts.scope import SCOPE_KINDS
from clientarea.audit.services import audit_record
from clientarea.core.validators import (
    MULTI_LINE_MESSAGE,
    SINGLE_LINE_MESSAGE,
    validate_multi_line,
    validate_single_line,
)
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import email_send_to_staff, notify

from .attachments import attachments_check, clean_filename
from .models import Attachment, Department, Ticket, TicketMessage
from .selectors import ticket_visible

logger = logging.getLogger(__name__)

SUBJECT_MAX_LENGTH = 200  # Ticket.subject's column
BIGINT_MAX = 2**63 - 1  # ids beyond it name no row (and would overflow the lookup)
ABOUT_REFUSED = "Choose one of the services or domains listed, or none."


class TicketError(Exception):
    """An action on a ticket that cannot be done, with a reason the user should read;
    `field` names the input at fault, if one is (the API answers it as that field's
    error)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AttachmentsUnavailable(TicketError):
    """The attachment store could not take the files (unreachable, refusing, disk full):
    nothing was saved or sent (the API's 503)."""


ATTACHMENTS_UNAVAILABLE = (
    "Your attachments could not be stored just now, so nothing was saved or sent. "
    "Please try again in a few minutes."
)


@dataclass(frozen=True)
class StoredUpload:
    """An attachment already in storage (``attachments_store``), waiting for its row."""

    name: str  # the storage's name: random, nothing the uploader chose
    original_name: str
    content_type: str
    size: int


@contextmanager
def attachments_store(
    files: Sequence[UploadedFile | StoredUpload],
) -> Iterator[list[StoredUpload]]:
    """Check the uploads and write them to storage, outside any transaction; the block
    then records them. If the block fails, the files written here are deleted again (once
    its transaction has rolled back). Files already stored by an outer
    ``attachments_store`` pass through, left to it."""
    uploads = [f for f in files if not isinstance(f, StoredUpload)]
    checked = dict(zip(map(id, uploads), attachments_check(uploads), strict=True))
    field = _file_field()
    written: list[StoredUpload] = []
    ready: list[StoredUpload] = []
    try:
        for item in files:
            if isinstance(item, StoredUpload):
                ready.append(item)
                continue
            upload, content_type = checked[id(item)]
            try:
                name = field.storage.save(
                    field.generate_filename(None, upload.name or "attachment"),
                    upload,
                    max_length=field.max_length,
                )
            except OSError as exc:
                logger.warning("Ticket attachment not stored: %s", exc)
                raise AttachmentsUnavailable(ATTACHMENTS_UNAVAILABLE) from exc
            stored = StoredUpload(
                name=name,
                original_name=clean_filename(upload.name or ""),
                content_type=content_type,
                size=upload.size or 0,
            )
            written.append(stored)
            ready.append(stored)
        yield ready
    except BaseException:
        for stored in written:
            _delete_file(stored.name)
        raise


def _file_field() -> models.FileField:
    return cast(models.FileField, Attachment._meta.get_field("file"))


def _delete_file(name: str) -> None:
    """Remove a stored file; one the store cannot delete now is logged (no row names it,
    and its random name reaches nobody), never raised over the error being handled."""
    try:
        _file_field().storage.delete(name)
    except OSError as exc:
        logger.warning("Ticket attachment %s not deleted: %s", name, exc)


def _clean_body(body: str) -> str:
    body = body.strip()
    if not body:
        raise TicketError("Write a message.", field="message")
    try:
        validate_multi_line(body)
    except ValidationError as exc:
        raise TicketError(f"Message: {MULTI_LINE_MESSAGE}", field="message") from exc
    return body


def _add_message(
    *,
    ticket: Ticket,
    author: User,
    body: str,
    is_staff: bool,
    files: Sequence[StoredUpload],
) -> TicketMessage:
    message = TicketMessage.objects.create(
        ticket=ticket,
        author=author,
        author_name=author.get_full_name(),
        author_email=author.email,
        is_staff=is_staff,
        body=body,
    )
    Attachment.objects.bulk_create(
        Attachment(
            message=message,
            file=stored.name,
            original_name=stored.original_name,
            content_type=stored.content_type,
            size=stored.size,
        )
        for stored in files
    )
    return message


def _lock(ticket: Ticket) -> Ticket:
    locked = (
        Ticket.objects.select_for_update(of=("self",))
        .select_related("account__owner", "department", "opener")
        .filter(pk=ticket.pk)
        .first()
    )
    if locked is None:
        raise OutOfReach("No such ticket.")  # gone since the caller read it
    return locked


def _about_fields(*, access: Access, about: tuple[str, int] | None) -> dict[str, int]:
    """The ticket's field naming the related item, once the policy agrees the opener may
    see that item: of this account, with the permission that shows its kind, inside
    their scope (exactly the choices the page offers). Anything else is refused like an
    unknown item."""
    if about is None:
        return {}
    kind_name, pk = about
    kind = SCOPE_KINDS.get(kind_name)
    field = Ticket.ABOUT_FIELDS.get(kind_name)
    item = (
        kind.model._default_manager.filter(**{kind.account_field: access.account, "pk": pk}).first()
        if kind is not None and field is not None and 0 < pk <= BIGINT_MAX
        else None
    )
    if (
        kind is None
        or field is None
        or item is None
        or not access.has(kind.permission)
        or not access.reaches(item)
    ):
        raise TicketError(ABOUT_REFUSED, field="about")
    return {f"{field}_id": pk}


def tickets_require(access: Access) -> Access:
    """May the person of `access` (as it stands now: ``Access.current``) use the account's
    tickets at all? An access that has ended is "no such account" (``OutOfReach``, a
    404 like any other object of an account they are no longer in); one without Open &
    Reply to Tickets is ``NotPermitted``. Returns the current access."""
    current = access.current()
    if current is None:
        raise OutOfReach("No such account.")
    if not current.has(Perm.TICKETS):
        raise NotPermitted(Perm.TICKETS)
    return current


def ticket_require(access: Access, ticket: Ticket) -> Access:
    """The one rule for a customer's action on a ticket, asked by the service whoever
    called it (page, API): the access as it stands now reaches the ticket (of its
    account and, for a person limited to chosen services and domains, one they opened
    about no item, or one about an item of their scope: the pages' list,
    ``selectors.ticket_visible``),
    else "no such ticket" (``OutOfReach``); and it may use the account's tickets, else
    ``NotPermitted``. Returns the current access."""
    current = access.current()
    if (
        current is None
        or not current.reaches(ticket)
        or not ticket_visible(current).filter(pk=ticket.pk).exists()
    ):
        raise OutOfReach("No such ticket.")
    if not current.has(Perm.TICKETS):
        raise NotPermitted(Perm.TICKETS)
    return current


def ticket_open(
    *,
    access: Access,
    department: Department,
    subject: str,
    priority: str,
    body: str,
    files: Sequence[UploadedFile | StoredUpload] = (),
    about: tuple[str, int] | None = None,
    request: HttpRequest | None = None,
) -> Ticket:
    """Open a ticket on the account of `access`, under its person's own name and email,
    optionally about one service or domain (`about`: (scope kind, id)) that the access
    may see. The policy is asked first (``tickets_require``): nothing is checked, stored
    or sent for an access that has ended or does not carry tickets."""
    current = tickets_require(access)
    account, opener = current.account, current.user
    try:
        validate_single_line(subject.strip())
    except ValidationError as exc:
        raise TicketError(f"Subject: {SINGLE_LINE_MESSAGE}", field="subject") from exc
    subject = " ".join(subject.split())
    if not subject:
        raise TicketError("Write a subject.", field="subject")
    if len(subject) > SUBJECT_MAX_LENGTH:
        raise TicketError(f"Subject: keep it to {SUBJECT_MAX_LENGTH} characters.", field="subject")
    if not department.is_active:
        raise TicketError("That department does not take new tickets.", field="department")
    if priority not in Ticket.Priority.values:
        raise TicketError("Choose a priority.", field="priority")
    about_fields = _about_fields(access=current, about=about)
    body = _clean_body(body)
    with attachments_store(files) as stored, transaction.atomic():
        now = timezone.now()
        ticket = Ticket.objects.create(
            account=account,
            opener=opener,
            opener_name=opener.get_full_name(),
            opener_email=opener.email,
            department=department,
            subject=subject,
            priority=priority,
            status=Ticket.Status.OPEN,
            created_at=now,
            updated_at=now,
            **about_fields,
        )
        message = _add_message(
            ticket=ticket, author=opener, body=body, is_staff=False, files=stored
        )
        audit_record(
            action="ticket.opened",
            actor=opener,
            account=account,
            target=ticket,
            changes={
                "department": department.name,
                "priority": priority,
                "attachments": len(files),
                **({"about": f"{about[0]}:{about[1]}"} if about else {}),
            },
            request=request,
        )
        # A receipt to the opener alone (who may read the account's tickets, or could not
        # have opened one).
        notify(
            account=account,
            kind=OutboxEmail.Kind.SUPPORT,
            template="support/email/ticket_opened",
            context={"ticket": ticket, "message": message},
            include_owner=False,
            include_contacts=False,
            people=[opener],
            about=ticket_about(ticket),
        )
        _tell_staff("support/email/staff_new_ticket", ticket, message, len(files))
    return ticket


def ticket_about(ticket: Ticket) -> tuple[str, int] | None:
    """The item a ticket is about, as its emails name it (so that Email History shows a
    person limited to chosen items only the support emails about their items)."""
    for kind, field in Ticket.ABOUT_FIELDS.items():
        item_id = getattr(ticket, f"{field}_id")
        if item_id is not None:
            return kind, item_id
    return None


def _tell_staff(template: str, ticket: Ticket, message: TicketMessage, attachments: int) -> None:
    """The provider's support inbox hears of every new ticket and customer reply (inside
    the action's transaction, like every email)."""
    about = ticket.about
    email_send_to_staff(
        template=template,
        context={
            "ticket": ticket,
            "message": message,
            "account": ticket.account,
            "about": str(about) if about is not None else "",
            "attachment_count": attachments,
        },
    )


def ticket_reply_customer(
    *,
    ticket: Ticket,
    access: Access,
    body: str,
    files: Sequence[UploadedFile | StoredUpload] = (),
    request: HttpRequest | None = None,
) -> TicketMessage:
    """A reply from the person of `access`, under their own name; a closed ticket is
    reopened by it. The policy is asked first (``ticket_require``): before any file is
    stored, and again on the locked row."""
    if files:
        ticket_require(access, ticket)
    body = _clean_body(body)
    with attachments_store(files) as stored, transaction.atomic():
        locked = _lock(ticket)
        author = ticket_require(access, locked).user
        before = locked.status
        message = _add_message(
            ticket=locked, author=author, body=body, is_staff=False, files=stored
        )
        locked.status = Ticket.Status.CUSTOMER_REPLY
        locked.updated_at = message.created_at
        locked.save(update_fields=["status", "updated_at"])
        audit_record(
            action="ticket.replied",
            actor=author,
            account=locked.account,
            target=locked,
            changes={"status": [before, locked.status]} if before != locked.status else {},
            request=request,
        )
        _tell_staff("support/email/staff_customer_reply", locked, message, len(files))
    ticket.status, ticket.updated_at = locked.status, locked.updated_at
    return message


def ticket_close(*, ticket: Ticket, access: Access, request: HttpRequest | None = None) -> Ticket:
    """The customer closes a ticket (staff change its status in the back office, through
    ``ticket_update_staff``). The policy is asked first (``ticket_require``)."""
    with transaction.atomic():
        locked = _lock(ticket)
        actor = ticket_require(access, locked).user
        if locked.is_closed:
            raise TicketError("This ticket is already closed.")
        before = locked.status
        locked.status = Ticket.Status.CLOSED
        locked.updated_at = timezone.now()
        locked.save(update_fields=["status", "updated_at"])
        audit_record(
            action="ticket.closed",
            actor=actor,
            account=locked.account,
            target=locked,
            changes={"status": [before, locked.status]},
            request=request,
        )
    ticket.status, ticket.updated_at = locked.status, locked.updated_at
    return locked


def ticket_reply_recipients(ticket: Ticket) -> tuple[bool, list[User]]:
    """(include_owner, people) for a staff reply: the opener, and the owner only if the
    owner opened it. An opener who no longer has access to the account's tickets is not
    sent the thread (the notification layer checks that again); the owner is told
    instead, so the answer is never lost."""
    account = ticket.account
    opener = ticket.opener
    if opener is not None and is_owner(opener, account):
        return True, [opener]
    if opener is not None and opener.is_active and may(opener, Perm.TICKETS, account):
        return False, [opener]
    return True, []


def ticket_reply_staff(
    *,
    ticket: Ticket,
    staff: User,
    body: str,
    files: Sequence[UploadedFile | StoredUpload] = (),
    status: str | None = None,
    request: HttpRequest | None = None,
) -> TicketMessage:
    """A staff answer: the ticket becomes Answered (or `status`), and the opener is emailed
    through the notification layer (plus the account's support contacts)."""
    if not staff.is_staff:
        raise TicketError("Only staff can answer tickets.")
    new_status = status or Ticket.Status.ANSWERED
    if new_status not in Ticket.Status.values:
        raise TicketError("Unknown status.")
    body = _clean_body(body)
    with attachments_store(files) as stored, transaction.atomic():
        locked = _lock(ticket)
        before = locked.status
        message = _add_message(ticket=locked, author=staff, body=body, is_staff=True, files=stored)
        locked.status = new_status
        locked.updated_at = message.created_at
        locked.save(update_fields=["status", "updated_at"])
        audit_record(
            action="ticket.staff_replied",
            actor=staff,
            account=locked.account,
            target=locked,
            changes={"status": [before, new_status]} if before != new_status else {},
            request=request,
            is_staff_action=True,
        )
        include_owner, people = ticket_reply_recipients(locked)
        notify(
            account=locked.account,
            kind=OutboxEmail.Kind.SUPPORT,
            template="support/email/staff_reply",
            context={
                "ticket": locked,
                "message": message,
                "attachment_count": len(files),
            },
            include_owner=include_owner,
            people=people,
            about=ticket_about(locked),
        )
    ticket.status, ticket.updated_at = locked.status, locked.updated_at
    return message


def ticket_update_staff(
    *,
    ticket: Ticket,
    staff: User,
    status: str | None = None,
    department: Department | None = None,
    priority: str | None = None,
    request: HttpRequest | None = None,
) -> Ticket:
    """Staff change a ticket's status, department or priority (no email)."""
    if not staff.is_staff:
        raise TicketError("Only staff can change tickets.")
    if status is not None and status not in Ticket.Status.values:
        raise TicketError("Unknown status.")
    if priority is not None and priority not in Ticket.Priority.values:
        raise TicketError("Unknown priority.")
    with transaction.atomic():
        locked = _lock(ticket)
        changes: dict[str, list[str]] = {}
        if status is not None and status != locked.status:
            changes["status"] = [locked.status, status]
            locked.status = status
        if priority is not None and priority != locked.priority:
            changes["priority"] = [locked.priority, priority]
            locked.priority = priority
        if department is not None and department.pk != locked.department_id:
            changes["department"] = [locked.department.name, department.name]
            locked.department = department
        if changes:
            locked.updated_at = timezone.now()
            locked.save(update_fields=["status", "priority", "department", "updated_at"])
            audit_record(
                action="ticket.updated",
                actor=staff,
                account=locked.account,
                target=locked,
                changes=changes,
                request=request,
                is_staff_action=True,
            )
    return locked
