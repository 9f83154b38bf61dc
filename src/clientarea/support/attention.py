"""The dashboard's support attention items: recent tickets awaiting the customer's reply."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.policy import Access
from clientarea.core.registry import ATTENTION_LIMIT, AttentionItem
from clientarea.core.timefmt import when

from .models import Ticket
from .selectors import ticket_visible

# Answered tickets older than this are not "recent" any more: not listed.
RECENT_DAYS = 30


def tickets_awaiting_reply(access: Access) -> list[AttentionItem]:
    """Tickets this access reaches that staff answered in the last RECENT_DAYS and that
    wait for the customer's reply, most recent first, in one query."""
    since = timezone.now() - timedelta(days=RECENT_DAYS)
    rows = list(
        ticket_visible(access)
        .filter(status=Ticket.Status.ANSWERED, updated_at__gte=since)
        .only("pk", "subject", "updated_at")
        .order_by("-updated_at", "-pk")[: ATTENTION_LIMIT + 1]
    )
    items = [
        AttentionItem(
            title=f"Ticket #{ticket.pk} awaits your reply: {ticket.subject}",
            detail=f"Answered {when(ticket.updated_at)}",
            url=reverse("support:ticket_detail", args=[ticket.pk]),
            action="Reply",
            tone="info",
        )
        for ticket in rows[:ATTENTION_LIMIT]
    ]
    if len(rows) > ATTENTION_LIMIT:
        items.append(
            AttentionItem(
                title="More answered tickets",
                url=reverse("support:ticket_list") + "?status=answered",
                action="View tickets",
                tone="info",
            )
        )
    return items
