"""Billing's part in ownership transfers and closing (accounts never imports billing).

- When ownership moves, the stored payment methods the former owner added are removed,
  unless they chose to leave them with the account (``accounts.signals.ownership_transferred``).
- The close page lists unpaid invoices; they block closing until paid or cancelled.
"""

from __future__ import annotations

from typing import Any

from clientarea.accounts.closing import ClosureItem
from clientarea.accounts.models import Account
from clientarea.audit.services import audit_record

from .models import Invoice, PaymentMethod


def payment_methods_on_transfer(
    *, account: Account, keep_payment_methods: bool, actor: Any, **kwargs: Any
) -> None:
    """Runs inside the transfer's transaction: the cards go with the ownership."""
    if keep_payment_methods:
        return
    for method in PaymentMethod.objects.select_for_update().filter(account=account):
        audit_record(
            action="payment_method.removed",
            actor=actor,
            account=account,
            target=method,
            target_label=method.label,
            changes={"reason": "ownership transferred"},
        )
        method.delete()


def unpaid_invoices_block_closing(account: Account) -> list[ClosureItem]:
    return [
        ClosureItem(
            section="Unpaid invoices",
            label=f"{invoice} ({invoice.balance} {invoice.currency}, due {invoice.due_date})",
            outcome="pay it, or ask us to cancel it",
            blocking=True,
        )
        for invoice in Invoice.objects.filter(
            account=account, status=Invoice.Status.UNPAID
        ).order_by("due_date", "pk")[:200]
    ]
