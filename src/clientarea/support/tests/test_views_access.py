"""Authorization from the attacker's side: no `tickets`, no page; another account's ids 404."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.permissions import ALL_CODES
from clientarea.support.models import Ticket, TicketMessage

from .factories import AttachmentFactory, DepartmentFactory, TicketFactory, TicketMessageFactory

pytestmark = pytest.mark.django_db

WITHOUT_TICKETS = sorted(ALL_CODES - {"tickets"})


def own_objects(account: Account) -> tuple[Ticket, int]:
    ticket = TicketFactory(account=account)
    attachment = AttachmentFactory(message=TicketMessageFactory(ticket=ticket))
    return ticket, attachment.pk


def requests_for(ticket_pk: int, attachment_pk: int) -> list[tuple[str, str]]:
    return [
        ("get", reverse("support:ticket_list")),
        ("get", reverse("support:ticket_open")),
        ("post", reverse("support:ticket_open")),
        ("get", reverse("support:ticket_detail", args=[ticket_pk])),
        ("post", reverse("support:ticket_reply", args=[ticket_pk])),
        ("post", reverse("support:ticket_close", args=[ticket_pk])),
        ("get", reverse("support:attachment_download", args=[attachment_pk])),
    ]


def test_every_page_and_action_is_refused_without_the_tickets_permission(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    ticket, attachment_pk = own_objects(account)
    DepartmentFactory(name="Sales")
    client = login_client(member_factory(*WITHOUT_TICKETS).user, account)
    for method, url in requests_for(ticket.pk, attachment_pk):
        data = {"department": ticket.department_id, "subject": "x", "message": "y"}
        response = getattr(client, method)(url, data) if method == "post" else client.get(url)
        assert response.status_code == 403, (method, url)
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN
    assert Ticket.objects.count() == 1 and TicketMessage.objects.count() == 1


@pytest.mark.parametrize("who", ["owner", "tickets"])
def test_every_page_and_action_is_allowed_with_it(
    who: str,
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    user = account.owner if who == "owner" else member_factory("tickets").user
    client = login_client(user, account)
    ticket, attachment_pk = own_objects(account)
    department = DepartmentFactory(name="Sales")
    assert client.get(reverse("support:ticket_list")).status_code == 200
    assert client.get(reverse("support:ticket_open")).status_code == 200
    opened = client.post(
        reverse("support:ticket_open"),
        {"department": department.pk, "subject": "New", "priority": "low", "message": "Hi"},
    )
    assert opened.status_code == 302
    assert client.get(reverse("support:ticket_detail", args=[ticket.pk])).status_code == 200
    replied = client.post(reverse("support:ticket_reply", args=[ticket.pk]), {"message": "More"})
    assert replied.status_code == 302
    closed = client.post(reverse("support:ticket_close", args=[ticket.pk]))
    assert closed.status_code == 302
    download = client.get(reverse("support:attachment_download", args=[attachment_pk]))
    assert download.status_code == 200
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.CLOSED
    assert Ticket.objects.filter(account=account).count() == 2


def test_another_accounts_ticket_and_attachment_ids_are_404(
    login_client: Callable[..., Client],
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    """Even a sub-account holding every permission on account A (and the owner of A)
    cannot reach account B's ticket or its attachment by id."""
    theirs, their_attachment = own_objects(other_account)
    everything = member_factory(*sorted(ALL_CODES)).user
    for user in (account.owner, everything):
        client = login_client(user, account)
        for method, url in requests_for(theirs.pk, their_attachment)[3:]:
            response = (
                client.post(url, {"message": "hijack"}) if method == "post" else client.get(url)
            )
            assert response.status_code == 404, (method, url)
    theirs.refresh_from_db()
    assert theirs.status == Ticket.Status.OPEN
    assert theirs.messages.count() == 1
    # and the list never shows it
    assert theirs.subject not in client.get(reverse("support:ticket_list")).content.decode()


def test_a_member_of_both_accounts_sees_only_the_current_accounts_tickets(
    login_client: Callable[..., Client],
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    member = member_factory("tickets")
    Membership.objects.create(account=other_account, user=member.user, permissions=["tickets"])
    theirs, their_attachment = own_objects(other_account)
    client = login_client(member.user, account)
    listing = client.get(reverse("support:ticket_list")).content.decode()
    assert theirs.subject not in listing
    # Acting on the other account's ticket from this one: not found, nothing changes.
    reply = {"body": "Hello"}
    assert client.post(reverse("support:ticket_reply", args=[theirs.pk]), reply).status_code == 404
    assert theirs.messages.count() == 1
    # A link to it (from an email) opens it in its own account, switching to it.
    assert client.get(reverse("support:ticket_detail", args=[theirs.pk])).status_code == 200
    assert client.session["current_account_id"] == other_account.pk
    assert (
        client.get(reverse("support:attachment_download", args=[their_attachment])).status_code
        == 200
    )


def test_logged_out_visitors_are_sent_to_login(client: Client, account: Account) -> None:
    ticket, attachment_pk = own_objects(account)
    for method, url in requests_for(ticket.pk, attachment_pk):
        response = getattr(client, method)(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))


def test_state_changes_are_post_only_and_csrf_protected(
    login_client: Callable[..., Client], account: Account
) -> None:
    ticket, _ = own_objects(account)
    client = login_client(account.owner, account, csrf=True)
    assert client.get(reverse("support:ticket_close", args=[ticket.pk])).status_code == 405
    assert client.get(reverse("support:ticket_reply", args=[ticket.pk])).status_code == 405
    assert client.post(reverse("support:ticket_close", args=[ticket.pk])).status_code == 403
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.OPEN
