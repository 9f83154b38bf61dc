"""Billing's part in ownership transfers and closing (accounts never imports billing).

- When ownership moves, the stored payment methods the former owner added are removed,
  unless they chose to leave them with the account (``accounts.signals.ownership_transferred``);
  once the transfer is committed, their gateway forgets them too (Stripe detaches them).
- The close page lists unpaid invoices; they block closing until paid or cancelled.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from django.db import transaction

from clientarea.accounts.closing import ClosureItem
from clientarea.accounts.models import Account
from clientarea.audit.services import audit_record
from clientarea.core.outside import OutsideError, outside_call

from .models import Invoice, PaymentMethod

logger = logging.getLogger(__name__)


def payment_methods_on_transfer(
    *, account: Account, keep_payment_methods: bool, actor: Any, **kwargs: Any
) -> None:
    """Runs inside the transfer's transaction: the cards go with the ownership."""
    if keep_payment_methods:
        return
    forget: list[tuple[str, str, int]] = []
    for method in PaymentMethod.objects.select_for_update().filter(account=account):
        audit_record(
            action="payment_method.removed",
            actor=actor,
            account=account,
            target=method,
            target_label=method.label,
            changes={"reason": "ownership transferred"},
        )
        forget.append((method.gateway, method.token, method.pk))
        method.delete()
    if forget:
        # The processor is told once the transfer is committed, with no transaction open
        # (core.outside): Stripe detaches the former owner's cards from the customer.
        transaction.on_commit(lambda: _forget_cards(forget))


def _forget_cards(cards: list[tuple[str, str, int]]) -> None:
    from .services import _stored_card_gateway

    for code, token, pk in cards:
        gateway = _stored_card_gateway(code)
        forget = getattr(gateway, "card_forget", None)
        if forget is None:
            continue
        try:
            outside_call(functools.partial(forget, token), retry_uncertain=True)
        except OutsideError as exc:
            logger.error(
                "Stored card %s (%s) of a transferred account is removed here but was not "
                "detached at its gateway (%s): detach it in the gateway's dashboard.",
                pk,
                token,
                exc,
            )


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
