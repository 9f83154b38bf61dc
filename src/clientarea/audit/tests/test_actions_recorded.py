"""The Activity Log's Action filter lists each action recorded on the account once, read
through the (account, action) index one entry per action, not by reading every event
(bench/bench_scale.py: 40,000 events, the page 5x slower than for a small account)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clientarea.accounts.models import Account
from clientarea.audit.filters import actions_recorded
from clientarea.audit.models import AuditEvent
from clientarea.audit.services import audit_record

pytestmark = pytest.mark.django_db


def test_each_action_of_the_account_once(account: Account, other_account: Account) -> None:
    assert actions_recorded(account) == []
    for action in (
        "invoice.paid",
        "contact.added",
        "invoice.paid",
        "user.invited",
        "contact.added",
    ):
        audit_record(action=action, account=account)
    audit_record(action="other.only", account=other_account)
    audit_record(action="no.account")

    assert actions_recorded(account) == ["contact.added", "invoice.paid", "user.invited"]


def test_the_index_exists() -> None:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, AuditEvent._meta.db_table)
    assert constraints["audit_account_action"]["columns"] == ["account_id", "action", "created_at"]


def test_postgresql_reads_one_index_entry_per_action(account: Account) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's plan")
    # Enough events, with fresh statistics, that the plan is the one a real account gets:
    # with 30 rows and whatever statistics the suite's other tests left, the planner was
    # free to read the account's few events through the plain account index and sort them.
    AuditEvent.objects.bulk_create(
        AuditEvent(action=f"action.{i % 3}", account=account) for i in range(3000)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {AuditEvent._meta.db_table}")
    with CaptureQueriesContext(connection) as queries:
        assert actions_recorded(account) == ["action.0", "action.1", "action.2"]
    with connection.cursor() as cursor:
        # Sequential scans out of the planner's reach: a few test rows would be scanned.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + queries[0]["sql"])
        raw = cursor.fetchone()[0]
    nodes = [(json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]]
    reads = []
    while nodes:
        node = nodes.pop()
        nodes.extend(node.get("Plans", []))
        if node.get("Relation Name") == AuditEvent._meta.db_table:
            reads.append(node)
    assert reads
    for node in reads:
        assert node.get("Index Name") == "audit_account_action", node
        # At most one entry per lookup: never the account's 3,000 events.
        assert node["Actual Rows"] <= 1, json.dumps(raw)
