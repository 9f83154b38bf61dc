"""Reads of tickets that several views (and the dashboard tile) share."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from clientarea.accounts.policy import Access

from .models import Attachment, Ticket, TicketMessage


def ticket_visible(access: Access) -> QuerySet[Ticket]:
    """The account's tickets this access reaches. A person limited to chosen services and
    domains sees the tickets they opened about no item and those about an item in their
    scope; the rest of the account's tickets are not listed and their pages are 404s."""
    tickets = Ticket.objects.filter(account=access.account)
    if access.scope is None:
        return tickets
    # Their own tickets about no item; any ticket about an item of their scope. A ticket
    # they opened about an item since taken out of their scope (or, for a scoped token,
    # its creator's ticket about another item) is not theirs any more: the scope rules.
    reach = Q(opener=access.user, **{f"{f}__isnull": True for f in Ticket.ABOUT_FIELDS.values()})
    for kind, field in Ticket.ABOUT_FIELDS.items():
        ids = access.scope_ids(kind)
        if ids:
            reach |= Q(**{f"{field}_id__in": sorted(ids)})
    return tickets.filter(reach)


def ticket_list_for(*, access: Access, status: str | None = None) -> QuerySet[Ticket]:
    """The tickets this access reaches, most recently active first; one query per page."""
    tickets = ticket_visible(access).select_related("department")
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


def ticket_open_count(access: Access) -> int:
    """Tickets this access reaches that are not closed (the dashboard's "Open tickets")."""
    return ticket_visible(access).exclude(status=Ticket.Status.CLOSED).count()
