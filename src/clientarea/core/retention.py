"""Data retention: removing what is old, a bounded batch at a time.

Each app owns its own retention job (security: tracked sessions and throttling counters;
notifications: the text of delivered emails); the worker's housekeeping runs them. They
share this helper, so that a first run on a table that grew for years neither holds the
database's write lock for long (SQLite has one writer: the web server would wait) nor
loads the rows into memory: each statement touches at most ``batch_size`` rows, chosen by
a subquery, and a run stops after ``max_batches`` (the next run, a minute later, goes on).
Audit events are never deleted by any of them.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

BATCH_SIZE = 2000
MAX_BATCHES = 25


def _batch(queryset: QuerySet[Any], batch_size: int) -> QuerySet[Any]:
    # A fresh filter on the primary keys of the next batch: DELETE and UPDATE with a LIMIT
    # in a subquery work on SQLite and PostgreSQL, and the rows never reach Python.
    pks = queryset.order_by().values("pk")[:batch_size]
    return queryset.model._base_manager.filter(pk__in=pks)


def delete_in_batches(
    queryset: QuerySet[Any], *, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES
) -> int:
    """Delete the rows of ``queryset``; how many went."""
    total = 0
    for _ in range(max_batches):
        # One DELETE a batch as long as nothing points at the model and no delete signal
        # listens (Django's fast delete); otherwise Django reads the batch first to
        # cascade, which stays correct, only slower.
        deleted, _ = _batch(queryset, batch_size).delete()
        total += deleted
        if deleted < batch_size:
            break
    return total


def update_in_batches(
    queryset: QuerySet[Any],
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    **values: Any,
) -> int:
    """``queryset.update(**values)`` a batch at a time; the queryset must no longer match
    a row once it is updated (or each batch would update the same rows again)."""
    total = 0
    for _ in range(max_batches):
        updated = _batch(queryset, batch_size).update(**values)
        total += updated
        if updated < batch_size:
            break
    return total
