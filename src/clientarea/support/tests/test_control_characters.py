"""A ticket subject is one line; a message keeps its line breaks but no other control
character. The services refuse them too (a caller that skips the form cannot store them),
with a TicketError that says what to fix, and nothing is saved or sent."""

from __future__ import annotations

from typing import Any

import pytest

from clientarea.accounts.models import Account
from clientarea.accounts.tests.factories import UserFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.core.validators import MULTI_LINE_MESSAGE, SINGLE_LINE_MESSAGE
from clientarea.notifications.models import OutboxEmail
from clientarea.support import services
from clientarea.support.models import Ticket, TicketMessage

from .factories import DepartmentFactory, TicketFactory

pytestmark = pytest.mark.django_db


def open_ticket(account: Account, **kwargs: Any) -> Ticket:
    defaults: dict[str, Any] = {
        "department": DepartmentFactory(name="Technical Support"),
        "subject": "Site down",
        "priority": Ticket.Priority.HIGH,
        "body": "Our site shows a 500 error.",
    }
    access = access_of(account.owner, account)
    return services.ticket_open(access=access, **{**defaults, **kwargs})


def nothing_happened() -> bool:
    return not (
        Ticket.objects.exists()
        or TicketMessage.objects.exists()
        or AuditEvent.objects.filter(action="ticket.opened").exists()
        or OutboxEmail.objects.exists()
    )


@pytest.mark.parametrize(
    "subject",
    [
        "Site\rdown",
        "Site down\nBcc: victim@example.com",
        "Site\x00",
        "\x1b[2J",
        "a\u2028b",
        "\u202e",
    ],
)
def test_opening_a_ticket_refuses_a_subject_that_is_not_one_line(
    account: Account, subject: str
) -> None:
    with pytest.raises(services.TicketError) as caught:
        open_ticket(account, subject=subject)
    assert str(caught.value) == f"Subject: {SINGLE_LINE_MESSAGE}"
    assert nothing_happened()


def test_opening_a_ticket_refuses_a_subject_too_long_for_its_column(account: Account) -> None:
    with pytest.raises(services.TicketError, match="200 characters"):
        open_ticket(account, subject="x" * 201)
    assert nothing_happened()


@pytest.mark.parametrize("body", ["NUL\x00here", "clear \x1b[2J screen", "bell\x07", "C1\x9b"])
def test_a_message_refuses_control_characters(account: Account, body: str) -> None:
    with pytest.raises(services.TicketError) as caught:
        open_ticket(account, body=body)
    assert str(caught.value) == f"Message: {MULTI_LINE_MESSAGE}"
    assert nothing_happened()
    ticket = TicketFactory(account=account)
    with pytest.raises(services.TicketError):
        services.ticket_reply_customer(
            ticket=ticket, access=access_of(account.owner, account), body=body
        )
    with pytest.raises(services.TicketError):
        services.ticket_reply_staff(ticket=ticket, staff=UserFactory(is_staff=True), body=body)
    assert not ticket.messages.exists()


def test_a_message_keeps_its_line_breaks_and_tabs(account: Account) -> None:
    ticket = open_ticket(account, body="Line one\r\nLine two\n\tindented")
    assert ticket.messages.get().body == "Line one\r\nLine two\n\tindented"
