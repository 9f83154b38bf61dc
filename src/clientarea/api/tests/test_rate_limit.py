"""The per-token rate limit counted in the database (any cache without an atomic incr,
the test settings' locmem included): exact, one statement per request, pruned by the
worker's retention; with Redis or Memcached it stays in the cache."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from clientarea.accounts.models import Account
from clientarea.accounts.tests import probe_urls
from clientarea.api import throttling
from clientarea.api.models import RateWindow
from clientarea.api.throttling import rate_consume, rate_windows_prune
from clientarea.core.registry import RETENTION_JOBS

from .helpers import api_get, assert_problem, make_token

pytestmark = pytest.mark.django_db

START = 60 * 1000 + 5.0  # five seconds into a 60-second window


def test_counts_until_the_limit_then_refuses_until_the_next_window(settings: Any) -> None:
    settings.API_RATE_LIMIT = (3, 60)
    assert [rate_consume("a", START + i) for i in range(3)] == [None, None, None]
    assert rate_consume("a", START + 10) == pytest.approx(45.0)
    assert rate_consume("a", START + 11) == pytest.approx(44.0)  # refused ones count too
    assert rate_consume("b", START + 12) is None  # another token counts on its own
    assert rate_consume("a", START + 55) is None  # the next window starts again
    assert dict(
        RateWindow.objects.values_list("window_start", "requests").filter(token_key="a")
    ) == {
        60_000: 5,
        60_060: 1,
    }


def test_an_sqlite_without_returning_counts_the_same(settings: Any, monkeypatch: Any) -> None:
    """SQLite before 3.35 (no RETURNING): the upsert and a read in one transaction."""
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False)
    settings.API_RATE_LIMIT = (2, 60)
    with CaptureQueriesContext(connection) as ctx:
        assert rate_consume("a", START) is None
    assert not any("RETURNING" in q["sql"] for q in ctx.captured_queries)
    assert rate_consume("a", START + 1) is None
    assert rate_consume("a", START + 2) == pytest.approx(53.0)
    assert rate_consume("a", START + 60) is None
    assert RateWindow.objects.get(token_key="a", window_start=60_000).requests == 3


def test_over_the_limit_an_api_request_is_a_429_with_retry_after(
    account: Account, settings: Any
) -> None:
    settings.API_RATE_LIMIT = (2, 60)
    _, secret = make_token(account)
    assert api_get(secret, "/api/v1/account").status_code == 200
    assert api_get(secret, "/api/v1/account").status_code == 200
    limited = api_get(secret, "/api/v1/account")
    assert_problem(limited, 429, "rate_limited")
    assert 1 <= int(limited["Retry-After"]) <= 61
    # Nothing but the count was written: the count row itself, one per token and window.
    assert RateWindow.objects.get().requests == 3


@pytest.mark.urls("clientarea.accounts.tests.probe_urls")
def test_the_limit_adds_one_statement_before_the_view(account: Account) -> None:
    _, secret = make_token(account)
    client = Client()
    for _ in range(2):  # the second request: the token's last use is not written again
        probe_urls.SEEN.clear()
        with CaptureQueriesContext(connection) as ctx:
            response = client.get("/api/v1/probe/", HTTP_AUTHORIZATION=f"Bearer {secret}")
        assert response.status_code == 200
    before_view = ctx.captured_queries[: probe_urls.SEEN[0] - ctx.initial_queries]
    counting = [q["sql"] for q in before_view if "api_ratewindow" in q["sql"]]
    assert len(counting) == 1, counting
    assert counting[0].startswith("INSERT") and "ON CONFLICT" in counting[0]
    assert "RETURNING" in counting[0]
    assert RateWindow.objects.get().requests == 2


def test_with_redis_or_memcached_the_count_stays_in_the_cache(
    settings: Any, monkeypatch: Any
) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    assert throttling.counts_in_cache()
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert not throttling.counts_in_cache()
    # The cache path itself (locmem standing in for an atomic cache): no statement at all.
    monkeypatch.setattr(throttling, "counts_in_cache", lambda: True)
    settings.API_RATE_LIMIT = (1, 60)
    with CaptureQueriesContext(connection) as ctx:
        assert rate_consume("c", START) is None
        assert rate_consume("c", START + 1) == pytest.approx(54.0)
    assert not ctx.captured_queries
    assert not RateWindow.objects.exists()


def test_retention_deletes_only_windows_before_the_previous_one(settings: Any) -> None:
    settings.API_RATE_LIMIT = (10, 60)
    for start in (59_880, 59_940, 60_000):  # two windows ago, the previous, the current
        RateWindow.objects.create(token_key="a", window_start=start, requests=3)
    RateWindow.objects.create(token_key="b", window_start=0, requests=1)
    assert rate_windows_prune(now=START) == 2
    assert sorted(RateWindow.objects.values_list("window_start", flat=True)) == [59_940, 60_000]
    assert "api rate windows" in RETENTION_JOBS  # the worker's hourly turn runs it


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_allow_exactly_the_limit(settings: Any) -> None:
    """Threads with a connection each, as app processes have, all at once: exactly
    `limit` allowed (the cache's read-then-write incr lost counts here)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has one writer, nothing runs at once")
    limit, threads = 5, 16
    settings.API_RATE_LIMIT = (limit, 3600)
    now = 3600 * 500 + 1.0
    barrier = threading.Barrier(threads)
    answers: list[float | None] = []
    errors: list[BaseException] = []

    def request() -> None:
        try:
            connection.ensure_connection()
            barrier.wait(30)
            answers.append(rate_consume("shared", now))
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=request) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors, errors
    assert len(answers) == threads
    assert answers.count(None) == limit
    assert RateWindow.objects.get(token_key="shared").requests == threads
