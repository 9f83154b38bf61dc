"""Audit events partitioned by month on PostgreSQL (``manage.py audit_partition``).

Audit events are never deleted, so their table only grows. Partitioned by month on
``created_at``, each month is its own table: the Activity Log's recent pages read only
the newest partitions' indexes, a month's partition can be archived or moved to cheaper
storage as a whole (``ALTER TABLE ... DETACH PARTITION``) without a DELETE, and VACUUM
and index upkeep work month by month.

``convert()`` turns the plain table Django's migrations made into a partitioned one, in
one transaction (the table is locked meanwhile: writers of audit events wait, so run it
in a quiet moment; its length grows with the events to copy):

1. the plain table and its indexes are renamed aside;
2. a table of the same columns, defaults and identity (``id``) is created, partitioned
   by range of ``created_at``; its primary key is ``(id, created_at)``, because the
   primary key (and any unique constraint) of a partitioned table must contain the
   partition key. ``id`` stays unique all the same: only its identity sequence fills it,
   which continues from the highest id copied;
3. a partition per month from the oldest event to ``months_ahead`` months from now, and
   a default partition that catches anything outside them (so an event is never refused
   if the partitions ahead were not made in time);
4. the events are copied, the old table's other indexes and foreign keys (to the account
   and the actor) are made again under their own names, and the old table is dropped.

No foreign key points *at* audit events (``audit_references``; checked by the command):
one would have to name ``(id, created_at)`` now. A future model that wants to refer to an
event keeps its id as a plain integer, as the events themselves do with their targets.

``ensure_months_ahead()`` makes the next months' partitions; the worker's housekeeping
runs it (``audit.partitions_ahead``), so there are always ``MONTHS_AHEAD`` ahead. An event
that landed in the default partition for a month that had none (the worker stopped for
months) is moved into that month's partition when it is made, in the same transaction.

Django sees the table as before (``id`` is its primary key; lookups by id use the
``(id, created_at)`` index). Migrations that add or drop an index work on a partitioned
table; one that changes ``id`` or ``created_at`` would need the same care as this.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from .models import AuditEvent

MONTHS_AHEAD = 3
TABLE = AuditEvent._meta.db_table
DEFAULT_PARTITION = f"{TABLE}_default"
OLD_TABLE = f"{TABLE}_unpartitioned"


class PartitionError(Exception):
    """Partitioning cannot be done here; nothing was changed."""


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def month_start(day: datetime.date) -> datetime.date:
    return day.replace(day=1)


def next_month(first: datetime.date) -> datetime.date:
    return (first.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)


def partition_name(first: datetime.date) -> str:
    return f"{TABLE}_{first:%Y_%m}"


def _bound(first: datetime.date) -> str:
    # Months in UTC, the database's own time for timestamptz.
    return f"'{first.isoformat()} 00:00:00+00'"


def _one(sql: str, params: list[str] | None = None) -> object:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        row = cursor.fetchone()
    return row[0] if row else None


def _all(sql: str, params: list[str] | None = None) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall())


def require_postgresql() -> None:
    if connection.vendor != "postgresql":
        raise PartitionError(
            f"Audit partitioning needs PostgreSQL; this database is {connection.vendor}. "
            "Nothing was changed (SQLite keeps one audit table; it has no partitions)."
        )


def is_partitioned() -> bool:
    return _one("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE]) == "p"


def audit_references() -> list[str]:
    """Foreign keys of other tables that point at the audit events (none today)."""
    rows = _all(
        "SELECT conrelid::regclass::text || '.' || conname FROM pg_constraint "
        "WHERE contype = 'f' AND confrelid = %s::regclass AND conrelid <> confrelid",
        [TABLE],
    )
    return [str(r[0]) for r in rows]


def existing_partitions() -> set[str]:
    rows = _all(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        [TABLE],
    )
    return {str(r[0]) for r in rows}


def _months(first: datetime.date, last: datetime.date) -> list[datetime.date]:
    months, month = [], month_start(first)
    while month <= last:
        months.append(month)
        month = next_month(month)
    return months


def _ahead(today: datetime.date, months_ahead: int) -> datetime.date:
    last = month_start(today)
    for _ in range(months_ahead):
        last = next_month(last)
    return last


def _create_partition_sql(first: datetime.date) -> str:
    return (
        f"CREATE TABLE {_q(partition_name(first))} PARTITION OF {_q(TABLE)} "
        f"FOR VALUES FROM ({_bound(first)}) TO ({_bound(next_month(first))})"
    )


def _move_from_default_sql(first: datetime.date) -> list[str]:
    """A month partition made while the default partition holds events of that month:
    they are moved into it (made detached, filled, emptied out of the default, attached).

    New audit events wait meanwhile: the table is locked against writers (readers go on)
    until the commit. Without it, an event committed by the app between the copy and the
    delete would be deleted uncopied, and one committed after the move would make the
    ATTACH fail (it finds a row of that month in the default partition). Writers that
    waited see the new partition once they get the lock, so their events go into it. The
    lock is taken on the parent table, the one the app writes through, before anything
    else: a writer's transaction already under way is waited for, so its events are moved
    too. The move itself is one statement (the rows deleted are the rows copied)."""
    name, low, high = _q(partition_name(first)), _bound(first), _bound(next_month(first))
    in_month = f"created_at >= {low} AND created_at < {high}"
    return [
        f"LOCK TABLE {_q(TABLE)} IN SHARE ROW EXCLUSIVE MODE",
        f"CREATE TABLE {name} (LIKE {_q(TABLE)} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
        f"WITH moved AS (DELETE FROM {_q(DEFAULT_PARTITION)} WHERE {in_month} RETURNING *) "  # noqa: S608
        f"INSERT INTO {name} SELECT * FROM moved",
        f"ALTER TABLE {_q(TABLE)} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})",
    ]


def conversion_sql(*, today: datetime.date, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """The statements that partition the plain audit table (run in one transaction)."""
    oldest = _one(f"SELECT min(created_at) FROM {_q(TABLE)}")  # noqa: S608
    first = oldest.date() if isinstance(oldest, datetime.datetime) else today
    indexes = _all(
        "SELECT i.relname, pg_get_indexdef(i.oid), x.indisprimary FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = %s::regclass "
        "ORDER BY i.relname",
        [TABLE],
    )
    foreign_keys = _all(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
        [TABLE],
    )
    primary_key = next(str(name) for name, _, primary in indexes if primary)
    sql = [
        # Foreign keys are checked at commit (Django makes them deferred): checks still due
        # on the old table would keep it from being dropped, so they are made now.
        "SET CONSTRAINTS ALL IMMEDIATE",
        f"LOCK TABLE {_q(TABLE)} IN ACCESS EXCLUSIVE MODE",
        f"ALTER TABLE {_q(TABLE)} RENAME TO {_q(OLD_TABLE)}",
    ]
    # Index names are unique in the schema: the old ones step aside for the new table's.
    sql += [f"ALTER INDEX {_q(str(name))} RENAME TO {_q(f'{name}_old')}" for name, _, _ in indexes]
    sql += [
        f"CREATE TABLE {_q(TABLE)} (LIKE {_q(OLD_TABLE)} INCLUDING DEFAULTS "
        "INCLUDING IDENTITY INCLUDING CONSTRAINTS) PARTITION BY RANGE (created_at)",
        f"ALTER TABLE {_q(TABLE)} ADD CONSTRAINT {_q(primary_key)} PRIMARY KEY (id, created_at)",
    ]
    sql += [_create_partition_sql(month) for month in _months(first, _ahead(today, months_ahead))]
    sql += [f"CREATE TABLE {_q(DEFAULT_PARTITION)} PARTITION OF {_q(TABLE)} DEFAULT"]
    sql += [
        f"INSERT INTO {_q(TABLE)} SELECT * FROM {_q(OLD_TABLE)}",  # noqa: S608
        # The identity goes on after the highest id copied (ids stay unique).
        f"SELECT setval(pg_get_serial_sequence('{TABLE}', 'id'), "  # noqa: S608 (names)
        f"coalesce((SELECT max(id) FROM {_q(TABLE)}), 0) + 1, false)",
    ]
    sql += [str(definition) for _, definition, primary in indexes if not primary]
    sql += [f"DROP TABLE {_q(OLD_TABLE)}"]
    sql += [
        f"ALTER TABLE {_q(TABLE)} ADD CONSTRAINT {_q(str(name))} {definition}"
        for name, definition in foreign_keys
    ]
    return sql


def months_ahead_sql(*, today: datetime.date, months_ahead: int = MONTHS_AHEAD) -> list[str]:
    """The statements that make the missing partitions from this month to
    ``months_ahead`` months ahead (none when they all exist)."""
    have = existing_partitions()
    sql: list[str] = []
    for month in _months(today, _ahead(today, months_ahead)):
        if partition_name(month) in have:
            continue
        stray = _one(
            f"SELECT EXISTS (SELECT 1 FROM {_q(DEFAULT_PARTITION)} "  # noqa: S608
            f"WHERE created_at >= {_bound(month)} AND created_at < {_bound(next_month(month))})"
        )
        sql += _move_from_default_sql(month) if stray else [_create_partition_sql(month)]
    return sql


@dataclass
class Plan:
    converting: bool
    statements: list[str]


def plan(*, today: datetime.date | None = None, months_ahead: int = MONTHS_AHEAD) -> Plan:
    """What ``apply`` would run: the conversion if the table is still plain, otherwise the
    partitions still missing ahead."""
    require_postgresql()
    today = today or timezone.now().date()
    if not is_partitioned():
        references = audit_references()
        if references:
            raise PartitionError(
                "These foreign keys point at audit events, and a partitioned table's key "
                f"is (id, created_at): {', '.join(references)}. Nothing was changed."
            )
        return Plan(True, conversion_sql(today=today, months_ahead=months_ahead))
    return Plan(False, months_ahead_sql(today=today, months_ahead=months_ahead))


def apply(
    *,
    today: datetime.date | None = None,
    months_ahead: int = MONTHS_AHEAD,
    echo: Callable[[str], None] | None = None,
) -> Plan:
    """Plan and run it in one transaction (planned under the transaction, so two callers
    at once do not both create the same partition: the second finds it made)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # One caller at a time (transaction-level: released at the commit, and fine
            # behind a transaction-pooling pooler).
            _one("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"clientarea:{TABLE}"])
        planned = plan(today=today, months_ahead=months_ahead)
        with connection.cursor() as cursor:
            for sql in planned.statements:
                if echo:
                    echo(sql)
                cursor.execute(sql)
    return planned


def partitions_ahead_job() -> str:
    """The worker's housekeeping (``audit.partitions_ahead``): on PostgreSQL with the audit
    table partitioned, make the months ahead that are missing. One catalog query when
    there is nothing to do; nothing at all on SQLite or before ``audit_partition``."""
    if connection.vendor != "postgresql" or not is_partitioned():
        return ""
    today = timezone.now().date()
    if not months_ahead_sql(today=today):
        return ""
    made = apply(today=today)
    count = sum(" PARTITION OF " in s or " ATTACH PARTITION " in s for s in made.statements)
    return f"made {count} monthly partitions ahead" if count else ""
