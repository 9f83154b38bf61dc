"""The worker's housekeeping runs once per interval across all worker processes
(core.periodic): through a conditional UPDATE of the PeriodicTurn row, held for the run;
on PostgreSQL under a transaction-level advisory lock for the claim only, so nothing is
held by the session (a transaction-pooling pooler may stand between)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clientarea.core.models import PeriodicTurn
from clientarea.core.periodic import periodic_turn
from clientarea.notifications.management.commands import run_worker

EVERY = timedelta(seconds=60)


@pytest.mark.django_db
def test_one_turn_per_interval_whoever_asks() -> None:
    now = timezone.now()
    # A second worker asking while the first runs: not its turn (the row is held).
    with (
        periodic_turn("job", every=EVERY, now=now) as first,
        periodic_turn("job", every=EVERY, now=now) as second,
    ):
        pass
    assert (first, second) == (True, False)
    with periodic_turn("job", every=EVERY, now=now + timedelta(seconds=59)) as early:
        pass
    with periodic_turn("job", every=EVERY, now=now + EVERY) as due:
        pass
    with periodic_turn("job", every=EVERY, now=now + EVERY) as again:
        pass
    assert (early, due, again) == (False, True, False)
    # Another task keeps its own turns.
    with periodic_turn("other", every=EVERY, now=now) as other:
        pass
    assert other is True


@pytest.mark.django_db
def test_a_run_in_progress_is_not_joined_even_past_its_interval() -> None:
    now = timezone.now()
    with (
        periodic_turn("job", every=EVERY, now=now) as first,
        periodic_turn("job", every=EVERY, now=now + 3 * EVERY) as while_running,
    ):
        pass
    assert (first, while_running) == (True, False)
    with periodic_turn("job", every=EVERY, now=now + 3 * EVERY) as after:
        pass
    assert after is True


@pytest.mark.django_db
def test_a_worker_that_died_mid_run_does_not_hold_the_turn_for_good() -> None:
    now = timezone.now()
    turn = periodic_turn("job", every=EVERY, now=now, hold=timedelta(minutes=5))
    assert turn.__enter__() is True  # ... and never exits: killed
    with periodic_turn("job", every=EVERY, now=now + timedelta(minutes=4)) as held:
        pass
    with periodic_turn("job", every=EVERY, now=now + timedelta(minutes=5)) as lapsed:
        pass
    assert (held, lapsed) == (False, True)


@pytest.mark.django_db
def test_the_block_failing_still_releases_the_turn() -> None:
    now = timezone.now()
    with pytest.raises(RuntimeError), periodic_turn("job", every=EVERY, now=now) as mine:
        assert mine
        raise RuntimeError("a job failed")
    assert PeriodicTurn.objects.get(name="job").held_until is None
    with periodic_turn("job", every=EVERY, now=now + EVERY) as next_turn:
        pass
    assert next_turn is True


@pytest.mark.django_db
def test_asking_costs_a_query_or_two() -> None:
    now = timezone.now()
    with periodic_turn("job", every=EVERY, now=now):
        pass
    with (
        CaptureQueriesContext(connection) as ctx,
        periodic_turn("job", every=EVERY, now=now + timedelta(seconds=1)),
    ):
        pass
    # (xact lock,) update, exists; the savepoint statements are the test's transaction's.
    asked = [q["sql"] for q in ctx.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(asked) <= 3, asked


@pytest.mark.django_db
def test_workers_run_the_housekeeping_once_per_interval(monkeypatch: Any) -> None:
    """Three workers in a row within one interval: the first runs the housekeeping, the
    other two deliver email only."""
    runs: list[int] = []
    monkeypatch.setattr(run_worker.Command, "_housekeeping", lambda self: runs.append(1))
    for _ in range(3):
        call_command("run_worker", "--once")
    assert runs == [1]
    PeriodicTurn.objects.update(due_at=timezone.now() - timedelta(seconds=1))
    call_command("run_worker", "--once")
    assert runs == [1, 1]


# --- PostgreSQL: several processes (connections) at the same moment -------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_gives_one_turn_to_concurrent_workers_holding_no_session_lock() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: several connections at once")
    now = timezone.now()
    inside, release = threading.Event(), threading.Event()
    results: dict[str, bool] = {}

    def worker(name: str, at: Any, hold_until_released: bool) -> None:
        try:
            with periodic_turn("job", every=EVERY, now=at) as mine:
                results[name] = mine
                if hold_until_released:
                    inside.set()
                    release.wait(10)
        finally:
            connections.close_all()

    def advisory_locks() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
            return int(cursor.fetchone()[0])

    first = threading.Thread(target=worker, args=("first", now, True))
    first.start()
    assert inside.wait(10)
    # During the run no advisory lock (nor transaction) is held: only the row says whose
    # turn it is, so a pooler handing the connection to another client breaks nothing.
    assert advisory_locks() == 0
    assert PeriodicTurn.objects.get(name="job").held_until is not None
    # Others, even with the interval over, do not start while the first one runs.
    for name in ("second", "third"):
        other = threading.Thread(target=worker, args=(name, now + 2 * EVERY, False))
        other.start()
        other.join(10)
    release.set()
    first.join(10)
    assert results == {"first": True, "second": False, "third": False}
    assert PeriodicTurn.objects.get(name="job").held_until is None  # released at the end
    # Within the interval nobody gets it; once it is over, one does.
    later = threading.Thread(target=worker, args=("later", now + timedelta(seconds=30), False))
    later.start()
    later.join(10)
    due = threading.Thread(target=worker, args=("due", now + EVERY, False))
    due.start()
    due.join(10)
    assert results["later"] is False and results["due"] is True


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_postgres_workers_asking_at_the_same_moment_get_one_turn() -> None:
    """Eight workers ask at once, each on its own connection: exactly one gets the turn
    (the transaction-level lock or the row's condition turns the others away)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: several connections at once")
    now = timezone.now()
    start = threading.Barrier(8)
    got: list[bool] = []

    def worker() -> None:
        try:
            start.wait(10)
            with periodic_turn("job", every=EVERY, now=now) as mine:
                got.append(mine)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(got) == [False] * 7 + [True]


@pytest.mark.django_db
def test_retention_runs_hourly_within_the_housekeeping(monkeypatch: Any) -> None:
    runs: list[int] = []
    monkeypatch.setattr(run_worker.Command, "_retention", lambda self: runs.append(1))
    call_command("run_worker", "--once")
    # A minute later the housekeeping is due again; the retention is not.
    PeriodicTurn.objects.filter(name=run_worker.HOUSEKEEPING_TURN).update(
        due_at=timezone.now() - timedelta(seconds=1)
    )
    call_command("run_worker", "--once")
    assert runs == [1]
    PeriodicTurn.objects.update(due_at=timezone.now() - timedelta(seconds=1))
    call_command("run_worker", "--once")
    assert runs == [1, 1]
