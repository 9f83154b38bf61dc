"""Invoice arithmetic, in one place.

Rounding rule (documented, and the same everywhere): each line is rounded to the cent on
its own, half up (``ROUND_HALF_UP``: 0.005 becomes 0.01):

    net  = round(quantity * unit price)
    tax  = round(net * tax rate / 100)

and the invoice's subtotal, tax and total are the exact sums of the rounded lines, so the
lines printed on an invoice always add up to its total to the cent. Money is ``Decimal``,
never float.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal("100")


def to_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class LineInput:
    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate: Decimal = Decimal("0")


@dataclass(frozen=True)
class LineAmounts:
    net: Decimal
    tax: Decimal

    @property
    def total(self) -> Decimal:
        return self.net + self.tax


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    lines: tuple[LineAmounts, ...]


def line_amounts(*, quantity: Decimal, unit_price: Decimal, tax_rate: Decimal) -> LineAmounts:
    net = to_cents(quantity * unit_price)
    tax = to_cents(net * tax_rate / HUNDRED)
    return LineAmounts(net=net, tax=tax)


def invoice_totals(lines: Iterable[LineInput]) -> Totals:
    amounts = tuple(
        line_amounts(quantity=ln.quantity, unit_price=ln.unit_price, tax_rate=ln.tax_rate)
        for ln in lines
    )
    subtotal = sum((a.net for a in amounts), Decimal("0.00"))
    tax = sum((a.tax for a in amounts), Decimal("0.00"))
    return Totals(subtotal=subtotal, tax=tax, total=subtotal + tax, lines=amounts)
