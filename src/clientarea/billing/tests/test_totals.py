"""Totals are computed in one function, per-line rounding half up, and always add up."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from clientarea.billing.totals import LineInput, invoice_totals, line_amounts

D = Decimal

quantities = st.decimals(min_value=D("0.01"), max_value=D("1000"), places=2)
prices = st.decimals(min_value=D("0"), max_value=D("100000"), places=2)
rates = st.sampled_from([D("0"), D("9"), D("13.5"), D("19"), D("20"), D("21"), D("23")]) | (
    st.decimals(min_value=D("0"), max_value=D("100"), places=2)
)
lines = st.lists(
    st.builds(LineInput, st.just("line"), quantities, prices, rates), min_size=1, max_size=30
)


@given(lines)
def test_lines_sum_exactly_to_the_totals(items: list[LineInput]) -> None:
    totals = invoice_totals(items)
    assert totals.subtotal == sum(a.net for a in totals.lines)
    assert totals.tax == sum(a.tax for a in totals.lines)
    assert totals.total == totals.subtotal + totals.tax == sum(a.total for a in totals.lines)
    for item, amounts in zip(items, totals.lines, strict=True):
        # Every figure is whole cents, and each is within half a cent of the exact value.
        for value in (amounts.net, amounts.tax, totals.total):
            assert value == value.quantize(D("0.01"))
        exact_net = item.quantity * item.unit_price
        assert abs(amounts.net - exact_net) <= D("0.005")
        assert abs(amounts.tax - amounts.net * item.tax_rate / 100) <= D("0.005")


def test_rounding_is_half_up_per_line() -> None:
    # 0.125 -> 0.13 (half up, not banker's 0.12); tax 23% of 0.13 = 0.0299 -> 0.03
    assert line_amounts(quantity=D("1"), unit_price=D("0.125"), tax_rate=D("23")).net == D("0.13")
    # Three lines of 0.333.. tax each round on their own: 3 x 0.33, not round(1.00).
    totals = invoice_totals([LineInput("x", D("1"), D("1.45"), D("23"))] * 3)
    assert totals.lines[0].tax == D("0.33")
    assert totals.tax == D("0.99")
    assert totals.total == D("5.34")


def test_no_float_anywhere() -> None:
    totals = invoice_totals([LineInput("x", D("2.5"), D("19.99"), D("21"))])
    assert all(isinstance(v, Decimal) for v in (totals.subtotal, totals.tax, totals.total))
    assert totals.subtotal == D("49.98") and totals.tax == D("10.50")
