"""Data retention: removing what is old, a bounded batch at a time.

Each app owns its own retention job (security: tracked sessions and throttling counters;
notifications: the text of delivered emails; here, the database cache's expired entries);
the worker's housekeeping runs them. They
share this helper, so that a first run on a table that grew for years neither holds the
database's write lock for long (SQLite has one writer: the web server would wait) nor
loads the rows into memory: each statement touches at most ``batch_size`` rows, chosen by
a subquery, and a run stops after ``max_batches`` (the next run, a minute later, goes on).
Audit events are never deleted by any of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.db import DatabaseCache
from django.db import connections, router
from django.db.models import QuerySet
from django.utils import timezone

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


def database_cache_prune(*, now: datetime | None = None) -> int:
    """Delete the expired entries of every database cache (CACHE_URL's default): the
    summaries no longer fresh (the API's rate-limit counts are kept elsewhere, see
    api/throttling.py). Django removes them only once the table passes MAX_ENTRIES; until
    then they would only take room. One DELETE per database cache; how many entries went."""
    removed = 0
    for alias in settings.CACHES:
        backend = caches[alias]
        if not isinstance(backend, DatabaseCache):
            continue
        connection = connections[router.db_for_write(backend.cache_model_class)]
        # As Django's own cull: whole seconds, in the database's datetime format.
        moment = (now or timezone.now()).replace(microsecond=0)
        table = connection.ops.quote_name(backend._table)  # type: ignore[attr-defined]
        expires = connection.ops.quote_name("expires")
        with connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE {expires} < %s",  # noqa: S608 (names quoted)
                [connection.ops.adapt_datetimefield_value(moment)],
            )
            removed += max(cursor.rowcount, 0)
    return removed
