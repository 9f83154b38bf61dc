"""The per-token rate limit: ``API_RATE_LIMIT`` = (requests, seconds), counted in
fixed windows in Django's cache; past it, 429 with ``Retry-After``.

Why not ``clientarea.security.throttle``: that limiter counts failures (logins, codes)
in database rows it locks, and blocks a key for a whole period once the limit is
reached. A rate limit counts every request of a token, so it would put a locked row
write on every API call; the cache's atomic ``add``/``incr`` costs one round trip and
needs no lock. Several app processes share the count when the cache is shared
(``CACHE_URL``: Redis, Memcached, or the database cache); with the default
per-process memory cache each process counts on its own.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from .services import TokenAccess

DEFAULT_RATE = (600, 60)


def rate() -> tuple[int, int]:
    configured = getattr(settings, "API_RATE_LIMIT", DEFAULT_RATE)
    requests, seconds = int(configured[0]), int(configured[1])
    return max(1, requests), max(1, seconds)


def rate_consume(token_key: str, now: float | None = None) -> float | None:
    """Count one request of the token (`token_key` names it); None if allowed, else the
    seconds until its window ends."""
    limit, period = rate()
    now = time.time() if now is None else now
    window = int(now // period)
    key = f"api-rate:{token_key}:{window}"
    # Every request but a window's first finds its count: one `incr` (with the database
    # cache, half the statements of an `add` before each `incr`).
    try:
        count = cache.incr(key)
    except ValueError:  # the window's first request (or its count was evicted)
        if cache.add(key, 1, timeout=period + 1):
            count = 1
        else:  # another request started the window meanwhile
            try:
                count = cache.incr(key)
            except ValueError:  # evicted again at once: start again
                cache.set(key, 1, timeout=period + 1)
                count = 1
    if count > limit:
        return (window + 1) * period - now
    return None


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
