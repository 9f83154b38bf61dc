"""Once per interval across every worker process: whose turn it is to run a periodic task.

Several workers may run at once (on one machine or many); each delivers email, but the
housekeeping (expiries, reconciliation, retention) must run once per interval, not once
per worker: twice at the same moment it would do each job twice over, e.g. email the
same expiry notice twice. ``periodic_turn`` gives the turn to one caller per interval:

- The ``PeriodicTurn`` row of the task says when it is next due and who holds it: one
  conditional UPDATE takes the turn only if it is due and nobody holds it, so exactly one
  caller's UPDATE matches (SQLite runs writes one at a time; PostgreSQL makes a second
  UPDATE of the row wait for the first and then re-check its condition, which no longer
  holds). The row is held until the run ends, or until ``hold`` has passed (a worker
  killed mid-run does not keep it for good).
- **PostgreSQL** also takes a *transaction-level* advisory lock
  (``pg_try_advisory_xact_lock``) around that UPDATE, so workers asking at the same
  moment do not queue on the row: the one that does not get the lock is told at once
  that it is not its turn. It is released with the claim's commit, a moment later. No
  session-level lock is held for the run: the run calls outside systems and must not sit
  in a transaction, and a session-level lock would not survive a transaction-pooling
  pooler (PgBouncer in transaction mode gives each transaction whichever server
  connection is free, so the unlock could reach another session than the lock). Workers
  may therefore connect through such a pooler like the app processes.

Times are the workers' clocks (keep them in sync, as for everything else).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Q
from django.utils import timezone

from .models import PeriodicTurn

DEFAULT_HOLD = timedelta(minutes=15)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks, from the task's name."""
    return int.from_bytes(
        hashlib.sha256(f"clientarea:{name}".encode()).digest()[:8], "big", signed=True
    )


def _ensure_row(name: str, now: datetime, using: str) -> None:
    # A new task (or a fresh database) is due at once; never overwrites an existing row.
    PeriodicTurn.objects.using(using).bulk_create(
        [PeriodicTurn(name=name, due_at=now)], ignore_conflicts=True
    )


def _claim(
    name: str, now: datetime, every: timedelta, *, holder: str, using: str, hold: timedelta | None
) -> bool:
    """Take the turn if it is due (and, with ``hold``, nobody holds it): one UPDATE."""
    rows = PeriodicTurn.objects.using(using).filter(name=name, due_at__lte=now)
    values: dict[str, object] = {"due_at": now + every, "holder": holder}
    if hold is not None:
        rows = rows.filter(Q(held_until__isnull=True) | Q(held_until__lte=now))
        values["held_until"] = now + hold
    if rows.update(**values):
        return True
    if not PeriodicTurn.objects.using(using).filter(name=name).exists():
        _ensure_row(name, now, using)
        return bool(rows.update(**values))
    return False


@contextmanager
def periodic_turn(
    name: str,
    *,
    every: timedelta,
    now: datetime | None = None,
    hold: timedelta = DEFAULT_HOLD,
    using: str = DEFAULT_DB_ALIAS,
) -> Iterator[bool]:
    """``with periodic_turn("worker.housekeeping", every=...) as mine: if mine: run()``.

    ``mine`` is True for one caller per ``every`` across all processes sharing the
    database, and nobody else's turn starts while that caller is inside the block. Not to
    be used inside a transaction (the claim must be visible to the others at once)."""
    now = now or timezone.now()
    holder = secrets.token_hex(8)
    connection = connections[using]
    if connection.vendor == "postgresql":
        with transaction.atomic(using=using):
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [advisory_key(name)])
                locked = bool(cursor.fetchone()[0])
            # Not locked: another worker is claiming it right now (it gets the turn or
            # finds it not due); either way not ours.
            mine = locked and _claim(name, now, every, holder=holder, using=using, hold=hold)
    else:
        mine = _claim(name, now, every, holder=holder, using=using, hold=hold)
    try:
        yield mine
    finally:
        if mine:
            PeriodicTurn.objects.using(using).filter(name=name, holder=holder).update(
                held_until=None
            )
