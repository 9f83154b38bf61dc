"""The retention jobs find what is old by index, not by reading whole tables (PostgreSQL's
EXPLAIN of the very statements they run). The apps' own jobs (billing's Idempotency-Key
records) are taken from the registry, as the worker takes them."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clientarea.core.registry import RETENTION_JOBS
from clientarea.notifications.services import outbox_bodies_prune
from clientarea.security.sessions import sessions_prune
from clientarea.security.throttle import throttle_prune

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


# --- PostgreSQL: the plans ---------------------------------------------------------------------


def _statements(job: Callable[[], int]) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        job()
    return [q["sql"] for q in ctx.captured_queries if q["sql"].startswith(("DELETE", "UPDATE"))]


def _plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("job", "indexes"),
    [
        (sessions_prune, ["security_session_ended", "security_session_open_seen"]),
        (throttle_prune, ["security_throttle_window"]),
        (outbox_bodies_prune, ["notifications_sent_with_text"]),
        (lambda: RETENTION_JOBS["payment idempotency keys"](), ["billing_payreq_created"]),
        (lambda: RETENTION_JOBS["api rate windows"](), ["api_ratewindow_start"]),
        (SessionStore.clear_expired, ["django_session_expire_date"]),
    ],
    ids=[
        "tracked sessions",
        "throttle counters",
        "email texts",
        "idempotency keys",
        "rate windows",
        "sessions",
    ],
)
def test_each_retention_statement_finds_old_rows_by_index(
    job: Callable[[], int], indexes: list[str]
) -> None:
    """Each statement the job runs, as PostgreSQL would plan it with sequential scans
    priced out (``enable_seqscan = off``; the test tables are nearly empty, and on a few
    rows a sequential scan is the right plan): only an index on the age's column can then
    take the place of reading the whole table, and the plan must name it. (The database
    cache's ``expires`` and Django's ``expire_date`` are indexed by Django itself.)"""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: EXPLAIN of the planner used in production")
    statements = _statements(job)
    assert statements
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plans = [_plan(sql) for sql in statements]
    print("\n\n".join(plans))  # shown with -s: the plans themselves
    for plan in plans:
        assert "Seq Scan" not in plan, plan
        for index in indexes:
            assert re.search(
                rf"(Index Scan|Index Only Scan|Bitmap Index Scan) (using|on) {index}", plan
            ), plan
