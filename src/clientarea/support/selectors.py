"""Reads of tickets that several views (and the dashboard tile) share."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from clientarea.accounts.models import Account

from .models import Attachment, Ticket, TicketMessage


def ticket_list_for(*, account: Account, status: str | None = None) -> QuerySet[Ticket]:
    """The account's tickets, most recently active first; one query per page."""
    tickets = Ticket.objects.filter(account=account).select_related("department")
    if status:
        tickets = tickets.filter(status=status)
    return tickets.order_by("-updated_at", "-id")


def ticket_messages(*, ticket: Ticket) -> QuerySet[TicketMessage]:
    """A ticket's thread, oldest first, with attachments: two queries whatever its length."""
    return (
        TicketMessage.objects.filter(ticket=ticket)
        .order_by("created_at", "id")
        .prefetch_related(Prefetch("attachments", queryset=Attachment.objects.order_by("id")))
    )


def ticket_open_count(account: Account) -> int:
    """Tickets of the account that are not closed (the dashboard's "Open tickets")."""
    return Ticket.objects.filter(account=account).exclude(status=Ticket.Status.CLOSED).count()
