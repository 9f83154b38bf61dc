"""What one domain app sells through billing, without importing it (and billing without
importing the seller).

An invoice line may carry an `item`: "<kind>:<details>", e.g. "domains.renewal:12" (the
renewal order 12 of the domains app). The seller registers, for its kind:

- nothing to create the invoice: it asks the registered biller (billing registers one in
  its AppConfig.ready) to issue an invoice for its lines and gets the invoice's id;
- a handler called when an invoice holding a line of that kind becomes paid, whoever
  recorded the payment (a card payment, one settled by the worker, credit, a bank
  transfer staff confirmed). The handler runs inside the transaction that records the
  payment, so what it writes is committed with the payment or not at all; it must not
  call an outside system (``transaction.on_commit`` or a worker job does that).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from django.http import HttpRequest

    from clientarea.accounts.models import Account, User


@dataclass(frozen=True)
class BillableLine:
    description: str
    unit_price: Decimal
    item: str  # "<kind>:<details>"
    quantity: Decimal = Decimal("1")
    tax_rate: Decimal = Decimal("0")


@dataclass(frozen=True)
class PaidItem:
    """One line of an invoice that has just become paid."""

    invoice_id: int
    invoice_number: int
    account_id: int
    item: str
    amount: Decimal  # what the line came to (tax included)


class Biller(Protocol):
    def issue(
        self,
        *,
        account: Account,
        lines: Sequence[BillableLine],
        actor: User | None,
        request: HttpRequest | None,
    ) -> tuple[int, int]:
        """Issue an invoice due today; returns its id and number."""
        ...

    def is_open(self, invoice_id: int) -> bool:
        """Whether the invoice still waits to be paid (unpaid, not cancelled)."""
        ...


_BILLER: list[Biller] = []
PAID_HANDLERS: dict[str, Callable[[PaidItem], None]] = {}


class NoBiller(RuntimeError):
    pass


def register_biller(biller: Biller) -> None:
    _BILLER[:] = [biller]


def biller() -> Biller:
    if not _BILLER:
        raise NoBiller("No app issues invoices in this installation.")
    return _BILLER[0]


def item_kind(item: str) -> str:
    return item.split(":", 1)[0]


def register_paid_handler(kind: str, handler: Callable[[PaidItem], None]) -> None:
    PAID_HANDLERS[kind] = handler


def items_paid(items: Sequence[PaidItem]) -> None:
    """Billing calls this, inside the transaction that marks an invoice paid."""
    for paid in items:
        handler = PAID_HANDLERS.get(item_kind(paid.item))
        if handler is not None:
            handler(paid)
