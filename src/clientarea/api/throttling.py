"""The per-token rate limit: ``API_RATE_LIMIT`` = (requests, seconds), counted in
fixed windows; past it, 429 with ``Retry-After``. The count is exact across processes:

- With Redis or Memcached as the cache (``CACHE_URL=rediscache://...``, ``pymemcache://...``)
  it is kept there: their ``incr`` is atomic on the server, one round trip.
- With any other cache (the database cache, the default; locmem; file) it is kept in the
  database, table ``api_ratewindow``: Django's ``incr`` is a read then a write there (two
  processes reading the same count both write count + 1, and a request goes uncounted),
  or each process counts on its own (locmem). One statement per request instead,
  ``INSERT ... ON CONFLICT (token, window) DO UPDATE SET requests = requests + 1
  RETURNING requests``: the database applies concurrent upserts of a row one after the
  other, the row lock lasts only that statement (no transaction is opened: the API runs
  in autocommit), and nothing is read first. An SQLite older than 3.35 has no RETURNING:
  there, the upsert and a read of the row inside one short transaction (SQLite's single
  writer holds the count until the read). Old windows go by the worker's retention
  (``rate_windows_prune``).

Why not ``clientarea.security.throttle``: that limiter counts failures (logins, codes)
in database rows it locks for a transaction, and blocks a key for a whole period once
the limit is reached; a rate limit counts every request of a token, so it takes the
cheapest exact count there is.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.memcached import BaseMemcachedCache
from django.core.cache.backends.redis import RedisCache
from django.db import connections, router, transaction
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from clientarea.core.retention import delete_in_batches

from .models import RateWindow
from .services import TokenAccess

DEFAULT_RATE = (600, 60)


def rate() -> tuple[int, int]:
    configured = getattr(settings, "API_RATE_LIMIT", DEFAULT_RATE)
    requests, seconds = int(configured[0]), int(configured[1])
    return max(1, requests), max(1, seconds)


def counts_in_cache() -> bool:
    """Whether the default cache has an atomic ``incr`` shared by every process."""
    return isinstance(caches["default"], (RedisCache, BaseMemcachedCache))


def rate_consume(token_key: str, now: float | None = None) -> float | None:
    """Count one request of the token (`token_key` names it); None if allowed, else the
    seconds until its window ends."""
    limit, period = rate()
    now = time.time() if now is None else now
    window = int(now // period)
    if counts_in_cache():
        count = _cache_count(f"api-rate:{token_key}:{window}", period)
    else:
        count = _database_count(token_key, window * period)
    if count > limit:
        return (window + 1) * period - now
    return None


def _cache_count(key: str, period: int) -> int:
    # Every request but a window's first finds its count: one `incr`.
    try:
        return cache.incr(key)
    except ValueError:  # the window's first request (or its count was evicted)
        if cache.add(key, 1, timeout=period + 1):
            return 1
        try:  # another request started the window meanwhile
            return cache.incr(key)
        except ValueError:  # evicted again at once: start again
            cache.set(key, 1, timeout=period + 1)
            return 1


def _database_count(token_key: str, window_start: int) -> int:
    alias = router.db_for_write(RateWindow)
    connection = connections[alias]
    table = connection.ops.quote_name(RateWindow._meta.db_table)
    requests = connection.ops.quote_name("requests")
    upsert = (
        f"INSERT INTO {table} (token_key, window_start, {requests}) VALUES (%s, %s, 1) "  # noqa: S608 (names quoted)
        "ON CONFLICT (token_key, window_start) "
        f"DO UPDATE SET {requests} = {table}.{requests} + 1"
    )
    params: tuple[str, int] = (token_key, window_start)
    if connection.features.can_return_columns_from_insert:
        with connection.cursor() as cursor:
            cursor.execute(f"{upsert} RETURNING {requests}", params)
            return int(cursor.fetchone()[0])
    # SQLite before 3.35: its one writer keeps the row as written until the transaction
    # ends, so the read returns this request's count, not a later one's.
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(upsert, params)
        cursor.execute(
            f"SELECT {requests} FROM {table} WHERE token_key = %s AND window_start = %s",  # noqa: S608
            params,
        )
        return int(cursor.fetchone()[0])


def rate_windows_prune(*, now: float | None = None) -> int:
    """Retention (the worker's hourly turn): delete the database's counts of windows
    before the previous one (never read again; the previous one is kept in case an app
    process's clock is a little behind); how many went."""
    _, period = rate()
    now = time.time() if now is None else now
    cutoff = int(now // period) * period - period
    return delete_in_batches(RateWindow.objects.filter(window_start__lt=cutoff))


class TokenRateThrottle(BaseThrottle):
    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        found = request.auth
        if not isinstance(found, TokenAccess):
            return True  # no token: refused with a 401 anyway
        # The id and a piece of the hash: a reused id (a test database) never shares a count.
        token = found.token
        self._wait = rate_consume(f"{token.pk}:{token.secret_hash[:12]}")
        return self._wait is None

    def wait(self) -> float | None:
        return self._wait
