"""manage.py audit_partition: audit events partitioned by month on PostgreSQL (converted
once, the coming months made ahead, safe to run again), refused on SQLite. The PostgreSQL
tests run in the test's transaction, which PostgreSQL rolls back DDL and all."""

from __future__ import annotations

import datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from clientarea.audit import partitioning
from clientarea.audit.models import AuditEvent
from clientarea.audit.services import audit_record
from clientarea.core.registry import PERIODIC_JOBS

pytestmark = pytest.mark.django_db


def _run(*args: str) -> str:
    out = StringIO()
    call_command("audit_partition", *args, stdout=out)
    return out.getvalue()


def test_sqlite_is_refused_and_nothing_changes() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite refusal")
    audit_record(action="test.kept")
    for args in ((), ("--dry-run",)):
        with pytest.raises(CommandError, match="needs PostgreSQL; this database is sqlite"):
            _run(*args)
    assert AuditEvent.objects.filter(action="test.kept").count() == 1
    assert PERIODIC_JOBS["audit.partitions_ahead"]() == ""  # the worker's job: nothing


def _partitions() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [partitioning.TABLE],
        )
        return dict(cursor.fetchall())


@pytest.mark.postgres
def test_postgres_partitions_by_month_keeps_every_event_and_is_idempotent() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    now = timezone.now()
    old = AuditEvent.objects.create(action="test.old", created_at=now - datetime.timedelta(days=70))
    recent = audit_record(action="test.recent")
    before = list(AuditEvent.objects.order_by("id").values_list("id", "action", "created_at"))

    dry = _run("--dry-run")
    assert "PARTITION BY RANGE (created_at)" in dry
    assert "PRIMARY KEY (id, created_at)" in dry
    assert "dry run" in dry and "nothing changed" in dry
    assert not partitioning.is_partitioned()  # the dry run changed nothing

    assert "now partitioned by month" in _run()
    assert partitioning.is_partitioned()
    parts = _partitions()
    # From the oldest event's month to three months ahead, and the default partition.
    first, last = partitioning.month_start(old.created_at.date()), now.date()
    for _ in range(3):
        last = partitioning.next_month(last.replace(day=1))
    month = first
    while month <= last:
        assert partitioning.partition_name(month) in parts
        month = partitioning.next_month(month)
    assert parts[partitioning.DEFAULT_PARTITION] == "DEFAULT"
    # Every event kept, ids and all; new ones continue after the highest id.
    after = list(AuditEvent.objects.order_by("id").values_list("id", "action", "created_at"))
    assert after == before
    newer = audit_record(action="test.after")
    assert newer.pk > recent.pk
    assert AuditEvent.objects.get(pk=old.pk).action == "test.old"
    # The foreign keys to the account and the actor are there again; none point at events.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
            [partitioning.TABLE],
        )
        assert cursor.fetchone()[0] == 2
    assert partitioning.audit_references() == []

    # Again: nothing to do (no error, no change), and so the worker's job.
    assert "nothing is missing" in _run()
    assert PERIODIC_JOBS["audit.partitions_ahead"]() == ""
    assert _partitions() == parts


@pytest.mark.postgres
def test_postgres_months_made_ahead_take_in_events_that_went_to_the_default() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    _run()
    far = timezone.now() + datetime.timedelta(days=190)  # past the months made ahead
    stray = AuditEvent.objects.create(action="test.far", created_at=far)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {partitioning.DEFAULT_PARTITION} WHERE id = %s",
            [stray.pk],
        )
        assert cursor.fetchone()[0] == 1
    dry = _run("--dry-run", "--months-ahead", "8")
    assert "ATTACH PARTITION" in dry and "nothing changed" in dry
    assert "Made" in _run("--months-ahead", "8")
    name = partitioning.partition_name(partitioning.month_start(far.date()))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT action FROM {name}")
        assert cursor.fetchall() == [("test.far",)]
        cursor.execute(f"SELECT count(*) FROM {partitioning.DEFAULT_PARTITION}")
        assert cursor.fetchone()[0] == 0
    assert AuditEvent.objects.get(pk=stray.pk).action == "test.far"


def test_months_ahead_must_be_sensible() -> None:
    with pytest.raises(CommandError, match="between 0 and 120"):
        _run("--months-ahead", "-1")
