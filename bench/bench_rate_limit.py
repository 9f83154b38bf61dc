"""The API's per-token rate limit under concurrency: Django's database cache (its ``incr``
is a read then a write, the way the count was kept before) against the database counter
(``api_ratewindow``, one upsert per request), with threads that each have their own
connection, as app processes do.

    DATABASE_URL=postgres://... .venv/bin/python bench/bench_rate_limit.py
    .venv/bin/python bench/bench_rate_limit.py      (SQLite in a temporary file)

Prints, for each way of counting: the requests sent, the count recorded (lost = sent -
recorded), how many were allowed of a limit, and the median time of one count. Target:
the database counter loses nothing and allows exactly the limit. Exits non-zero if not.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
_tmp = tempfile.mkdtemp(prefix="clientarea-bench-rate-")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_tmp}/bench.sqlite3")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"

import django  # noqa: E402

django.setup()

from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from clientarea.api import throttling  # noqa: E402
from clientarea.api.models import RateWindow  # noqa: E402

THREADS = int(os.environ.get("BENCH_THREADS", "8"))
PER_THREAD = int(os.environ.get("BENCH_PER_THREAD", "50"))
LIMIT = int(os.environ.get("BENCH_LIMIT", "100"))
DATABASE_CACHE = {
    "BACKEND": "django.core.cache.backends.db.DatabaseCache",
    "LOCATION": "bench_rate_cache",
    "OPTIONS": {"MAX_ENTRIES": 50_000},
}


@contextmanager
def database_cache() -> Iterator[None]:
    # The cache path, as it ran with the default CACHE_URL before.
    with (
        override_settings(CACHES={"default": DATABASE_CACHE}),
        mock.patch.object(throttling, "counts_in_cache", lambda: True),
    ):
        call_command("createcachetable", verbosity=0)
        yield


@contextmanager
def database_counter() -> Iterator[None]:
    with mock.patch.object(throttling, "counts_in_cache", lambda: False):
        yield


def hammer(token: str, now: float, per_thread: int) -> tuple[list[float | None], list[float]]:
    answers: list[float | None] = []
    timings: list[float] = []
    barrier = threading.Barrier(THREADS)

    def run() -> None:
        try:
            connection.ensure_connection()
            barrier.wait(60)
            for _ in range(per_thread):
                started = time.perf_counter()
                answers.append(throttling.rate_consume(token, now))
                timings.append(time.perf_counter() - started)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, timings


def recorded(way: str, token: str, now: float) -> int:
    _, period = throttling.rate()
    window = int(now // period)
    if way == "database cache":
        return int(cache.get(f"api-rate:{token}:{window}") or 0)
    row = RateWindow.objects.filter(token_key=token, window_start=window * period).first()
    return row.requests if row else 0


def main() -> int:
    call_command("migrate", verbosity=0)
    print(f"{connection.vendor}: {THREADS} threads at once, each with its own connection")
    ok = True
    now = 3600 * 1000 + 1.0
    for way, counting in (
        ("database cache", database_cache),
        ("database counter", database_counter),
    ):
        with counting(), override_settings(API_RATE_LIMIT=(10**9, 3600)):
            sent = THREADS * PER_THREAD
            _answers, timings = hammer(f"{way[9:]}-count", now, PER_THREAD)
            count = recorded(way, f"{way[9:]}-count", now)
        with counting(), override_settings(API_RATE_LIMIT=(LIMIT, 3600)):
            limited, _ = hammer(f"{way[9:]}-limit", now, (2 * LIMIT) // THREADS + 1)
        allowed = limited.count(None)
        median_us = statistics.median(timings) * 1e6
        print(
            f"{way:>17}: sent {sent}, recorded {count} (lost {sent - count}); "
            f"allowed {allowed} of a limit of {LIMIT} ({len(limited)} sent); "
            f"median {median_us:.0f} µs a count"
        )
        if way == "database counter":
            ok = ok and count == sent and allowed == LIMIT
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
