"""The unpaid invoices (the invoice list's total due, the dashboard's tile and attention
items) leave out combined invoices by probing a small partial index of their lines, not
every line of each unpaid invoice (bench/bench_scale.py: 700 unpaid invoices)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.db import connection

from clientarea.accounts.models import Account
from clientarea.billing.models import InvoiceLine
from clientarea.billing.selectors import COMBINED_PREFIX, unpaid_invoices
from clientarea.billing.tests.factories import make_invoice
from clientarea.billing.totals import LineInput

pytestmark = pytest.mark.django_db


def test_the_partial_index_holds_the_combined_invoices_lines() -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, InvoiceLine._meta.db_table)
    assert constraints["billing_line_pays_invoice"]["columns"] == ["invoice_id"]
    index = next(i for i in InvoiceLine._meta.indexes if i.name == "billing_line_pays_invoice")
    # The selectors' prefix: the index's condition is the query's, or PostgreSQL ignores it.
    assert index.condition.children == [("item__startswith", COMBINED_PREFIX)]


def test_postgresql_probes_the_partial_index(account: Account) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plan")
    # Unpaid invoices with many ordinary lines, and fresh statistics: with a few rows and
    # whatever statistics the suite's other tests left, probing the plain invoice index
    # and filtering its lines could cost the planner no more than the partial index.
    for _ in range(3):
        invoice = make_invoice(account, lines=[LineInput("Hosting", D("1"), D("10.00"), D("23"))])
        line = invoice.lines.get()
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=invoice,
                position=i + 1,
                description=line.description,
                unit_price=line.unit_price,
                item=f"service:{i}",
            )
            for i in range(700)
        )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {InvoiceLine._meta.db_table}")
        cursor.execute("SET LOCAL enable_seqscan = off")  # a few test rows would be scanned
    plan = unpaid_invoices(account).explain()
    assert "billing_line_pays_invoice" in plan, plan
