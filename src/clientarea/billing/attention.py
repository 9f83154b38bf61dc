"""The dashboard's billing attention items: overdue and unpaid invoices, with Pay Now."""

from __future__ import annotations

from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format

from clientarea.accounts.policy import Access
from clientarea.core.registry import ATTENTION_LIMIT, AttentionItem

from .selectors import unpaid_invoices


def invoices_needing_payment(access: Access) -> list[AttentionItem]:
    """Unpaid invoices with money due, overdue first (oldest due date first). Invoices
    are account-wide: a resource scope has no effect on them. One query, whatever the
    number of invoices; an invoice whose bank transfer was announced waits for staff and
    is not listed."""
    rows = list(
        unpaid_invoices(access.account)
        .filter(total__gt=F("amount_paid"), awaiting_transfer_since__isnull=True)
        .order_by("due_date", "number")[: ATTENTION_LIMIT + 1]
    )
    today = timezone.localdate()
    items = []
    for invoice in rows[:ATTENTION_LIMIT]:
        overdue = invoice.due_date < today
        due = date_format(invoice.due_date, "j M Y")
        items.append(
            AttentionItem(
                title=f"Invoice #{invoice.number} is {'overdue' if overdue else 'unpaid'}",
                detail=(
                    f"{invoice.balance} {invoice.currency} {'was due' if overdue else 'due'} {due}"
                ),
                url=reverse("billing:invoice_pay", args=[invoice.pk]),
                action="Pay Now",
                tone="danger" if overdue else "warn",
            )
        )
    if len(rows) > ATTENTION_LIMIT:
        items.append(
            AttentionItem(
                title="More unpaid invoices",
                url=reverse("billing:invoice_list") + "?status=unpaid",
                action="View invoices",
                tone="info",
            )
        )
    return items
