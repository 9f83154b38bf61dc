"""Queries that every page runs read the person's own rows through an index, however many
accounts there are (bench/bench_scale.py measures them at 100,000 accounts).

On PostgreSQL, with sequential scans priced out of the planner's reach (a table of a few
test rows would otherwise be scanned whatever its indexes), a query that no index can
serve still reads the whole table (a sequential scan, or a whole index walked). SQLite's
planner serves both forms with its indexes, so there the test checks only the result."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.policy import accounts_for
from clientarea.accounts.services import account_create, user_create
from clientarea.core.context_processors import SELECTABLE, _selectable_ids

pytestmark = pytest.mark.django_db


def reads_whole_table(qs: QuerySet, table: str) -> bool:
    """Whether the plan reads `table` without an index condition (a sequential scan, or
    a walk of a whole index), with 2,000 more accounts of other people in the tables
    and fresh statistics: with a few rows, and whatever statistics the suite's other
    tests left, walking a whole small index was as cheap as any plan (it failed once)."""
    if connection.vendor != "postgresql":
        return False
    stranger = user_create(email="many@example.com", password=None, first_name="M")
    accounts = Account.objects.bulk_create(
        Account(owner=stranger, company_name=f"Other {i}") for i in range(2000)
    )
    member = user_create(email="member@example.com", password=None, first_name="S")
    Membership.objects.bulk_create(
        Membership(account=account, user=member, permissions=[]) for account in accounts[:500]
    )
    with connection.cursor() as cursor:
        for model in (Account, Membership):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
        cursor.execute("SET LOCAL enable_seqscan = off")  # the test's transaction only
    nodes = [json.loads(qs.explain(format="json"))[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node.get("Relation Name") == table and not (
            "Index Cond" in node or "Recheck Cond" in node
        ):
            return True
    return False


def test_accounts_for_reads_only_the_persons_accounts_by_index():
    owner = user_create(email="o@example.com", password=None, first_name="O")
    own = account_create(owner=owner, company_name="Own")
    other = account_create(
        owner=user_create(email="x@example.com", password=None, first_name="X"),
        company_name="Member of",
    )
    Membership.objects.create(account=other, user=owner, permissions=["invoices"])
    account_create(
        owner=user_create(email="n@example.com", password=None, first_name="N"),
        company_name="Not theirs",
    )

    assert list(accounts_for(owner)) == [other, own]
    assert not reads_whole_table(accounts_for(owner), "accounts_account")


def test_the_menus_switch_account_check_reads_by_index():
    owner = user_create(email="o@example.com", password=None, first_name="O")
    own = account_create(owner=owner, company_name="Own")
    account_create(
        owner=user_create(email="n@example.com", password=None, first_name="N"),
        company_name="Not theirs",
    )

    ids = _selectable_ids(owner.pk, timezone.now())

    assert list(ids) == [(own.pk,)]
    assert not reads_whole_table(ids, "accounts_account")
    # The menu's prepared SQL is this query's (no fallback to building it each request).
    assert SELECTABLE.is_prepared(connection.alias)
