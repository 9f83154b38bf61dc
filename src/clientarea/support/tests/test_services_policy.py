"""The customers' ticket services check the policy themselves, from the attacker's side:
whatever entry point calls them (page, API), an access to another account, one that
has ended since it was built, one without Open & Reply to Tickets, or a scoped one aimed
at a ticket outside its reach is refused before anything is stored, audited or sent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.policy import Access, NotPermitted, OutOfReach
from clientarea.accounts.services import membership_revoke
from clientarea.accounts.tests.factories import access_of
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail
from clientarea.support import services
from clientarea.support.models import Attachment, Ticket, TicketMessage

from .factories import PNG, DepartmentFactory, TicketFactory

pytestmark = pytest.mark.django_db

Action = Callable[[Ticket, Access], object]

ACTIONS: dict[str, Action] = {
    "reply": lambda t, a: services.ticket_reply_customer(
        ticket=t, access=a, body="Any news?", files=[SimpleUploadedFile("a.png", PNG)]
    ),
    "close": lambda t, a: services.ticket_close(ticket=t, access=a),
}


def _open(access: Access, **kwargs: Any) -> Ticket:
    defaults: dict[str, Any] = {
        "department": DepartmentFactory(name="Technical Support"),
        "subject": "Site down",
        "priority": Ticket.Priority.HIGH,
        "body": "Our site shows a 500 error.",
        "files": [SimpleUploadedFile("a.png", PNG)],
    }
    return services.ticket_open(access=access, **{**defaults, **kwargs})


def _nothing_happened(ticket: Ticket | None = None, emails: int = 0) -> None:
    if ticket is None:
        assert not Ticket.objects.exists()
    else:
        fresh = Ticket.objects.get(pk=ticket.pk)
        assert (fresh.status, fresh.updated_at) == (ticket.status, ticket.updated_at)
    assert not TicketMessage.objects.exists() and not Attachment.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="ticket.").exists()
    assert OutboxEmail.objects.count() == emails  # no receipt, no note to staff
    _, stored = (
        default_storage.listdir("support/attachments")
        if default_storage.exists("support/attachments")
        else ([], [])
    )
    assert not [name for name in stored if name not in _EXISTING_FILES]


_EXISTING_FILES: set[str] = set()


@pytest.fixture(autouse=True)
def _files_before() -> None:
    _EXISTING_FILES.clear()
    if default_storage.exists("support/attachments"):
        _EXISTING_FILES.update(default_storage.listdir("support/attachments")[1])


# --- opening ----------------------------------------------------------------------------


def test_an_access_without_tickets_cannot_open_one(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    viewer = member_factory("invoices", "products", "domains")
    with pytest.raises(NotPermitted, match=r"\(tickets\)"):
        _open(access_of(viewer.user, account))
    _nothing_happened()


def test_an_access_that_ended_after_it_was_built_cannot_open_one(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets")
    access = access_of(member.user, account)  # the page built it; then Revoke Access
    membership_revoke(membership=member, actor=account.owner)
    emails = OutboxEmail.objects.count()
    with pytest.raises(OutOfReach):
        _open(access)
    _nothing_happened(emails=emails)


def test_the_permission_removed_after_the_access_was_built_is_refused(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets")
    access = access_of(member.user, account)
    Membership.objects.filter(pk=member.pk).update(permissions=["invoices"])
    with pytest.raises(NotPermitted):
        _open(access)
    _nothing_happened()


def test_the_policy_is_asked_before_the_input_is(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    """An access that may not open tickets learns nothing about its input (not "write a
    subject"): the refusal is the policy's."""
    viewer = member_factory("invoices")
    with pytest.raises(NotPermitted):
        _open(access_of(viewer.user, account), subject="")
    _nothing_happened()


@pytest.mark.parametrize("about", [("invoice", 1), ("service", 2**63), ("service", 0)])
def test_about_an_unknown_kind_or_id_is_refused(account: Account, about: tuple[str, int]) -> None:
    with pytest.raises(services.TicketError, match="services or domains listed"):
        _open(access_of(account.owner, account), about=about)
    _nothing_happened()


def test_a_scoped_token_like_access_never_grows_with_its_persons_grant(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    """An access built narrow (e.g. a token's) stays narrow when the person's own grant
    widens: the service asks the intersection, not the person."""
    member = member_factory("invoices")
    narrow = access_of(member.user, account)
    Membership.objects.filter(pk=member.pk).update(permissions=["invoices", "tickets"])
    with pytest.raises(NotPermitted):
        _open(narrow)
    _nothing_happened()


# --- replying and closing ---------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_another_accounts_ticket_is_not_found_even_for_its_owner_elsewhere(
    action: str, account: Account, other_account: Account
) -> None:
    foreign = TicketFactory(account=other_account)
    with pytest.raises(OutOfReach, match="No such ticket"):
        ACTIONS[action](foreign, access_of(account.owner, account))
    _nothing_happened(foreign)


@pytest.mark.parametrize("action", ACTIONS)
def test_an_access_without_tickets_is_refused_with_a_403(
    action: str, account: Account, member_factory: Callable[..., Membership]
) -> None:
    ticket = TicketFactory(account=account)
    viewer = member_factory("invoices", "products")
    with pytest.raises(NotPermitted, match=r"\(tickets\)"):
        ACTIONS[action](ticket, access_of(viewer.user, account))
    _nothing_happened(ticket)


@pytest.mark.parametrize("action", ACTIONS)
def test_an_access_revoked_after_it_was_built_is_not_found(
    action: str, account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets")
    ticket = TicketFactory(account=account, opener=member.user)
    access = access_of(member.user, account)
    membership_revoke(membership=member, actor=account.owner)
    emails = OutboxEmail.objects.count()
    with pytest.raises(OutOfReach, match="No such ticket"):
        ACTIONS[action](ticket, access)
    _nothing_happened(ticket, emails)


def test_a_reply_is_under_the_name_of_the_access_person_whatever_the_caller_passes(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("tickets")
    ticket = TicketFactory(account=account)
    message = services.ticket_reply_customer(
        ticket=ticket, access=access_of(member.user, account), body="Me too."
    )
    assert message.author == member.user and message.author_email == member.user.email
    event = AuditEvent.objects.get(action="ticket.replied")
    assert event.actor == member.user
