"""Several workers share the outbox on PostgreSQL and never claim the same email.

Each worker here is a thread with its own database connection, as each worker process
has its own. SQLite has no row locks (one writer at a time does the same job there).
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from clientarea.notifications import services
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import email_queue, outbox_deliver_due

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has no row locks to race against")


def queue(n: int) -> None:
    for i in range(n):
        email_queue(to_email=f"person{i}@example.com", subject=f"Message {i}", body="Body")


def in_thread(target: Callable[[], Any]) -> threading.Thread:
    def run() -> None:
        try:
            target()
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_claim_in_progress_is_passed_over_not_waited_for_nor_taken_twice() -> None:
    queue(30)
    now = timezone.now()
    claimed: dict[str, set[int]] = {}
    a_holds_its_rows = threading.Event()
    release_a = threading.Event()

    def pause_after_the_claim_update(execute: Any, sql: str, *args: Any) -> Any:
        result = execute(sql, *args)
        if sql.startswith('UPDATE "notifications_outboxemail"'):
            # Worker A has locked and marked its rows, and not committed yet.
            a_holds_its_rows.set()
            assert release_a.wait(30)
        return result

    def worker_a() -> None:
        with connection.execute_wrapper(pause_after_the_claim_update):
            claimed["a"] = {r.pk for r in services._claim(10, now)[1]}

    thread = in_thread(worker_a)
    try:
        assert a_holds_its_rows.wait(30)
        # Worker B claims meanwhile. Were it to wait for A's locks it would fail here
        # (lock_timeout) rather than hang: it must pass over them.
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        claimed["b"] = {r.pk for r in services._claim(10, now)[1]}
    finally:
        release_a.set()
        thread.join(30)
    # Worker C, after A committed, with the same stale idea of "now".
    claimed["c"] = {r.pk for r in services._claim(100, now)[1]}
    assert [len(claimed[w]) for w in "abc"] == [10, 10, 10]
    assert not (claimed["a"] & claimed["b"] or claimed["a"] & claimed["c"])
    assert not claimed["b"] & claimed["c"]
    assert claimed["a"] | claimed["b"] | claimed["c"] == set(
        OutboxEmail.objects.values_list("pk", flat=True)
    )
    assert len(set(OutboxEmail.objects.values_list("claim_token", flat=True))) == 3


def test_three_workers_draining_the_outbox_at_once_send_each_email_once() -> None:
    queue(150)
    mail.outbox = []
    sent_by: Counter[int] = Counter()
    start = threading.Barrier(3)

    def worker(number: int) -> None:
        start.wait(30)
        while True:
            stats = outbox_deliver_due(batch_size=7)
            if not any(stats.values()):
                break
            sent_by[number] += stats["sent"]

    threads = [in_thread(functools.partial(worker, n)) for n in range(3)]
    for thread in threads:
        thread.join(120)
    ids = Counter(m.extra_headers["Message-ID"] for m in mail.outbox)
    assert len(ids) == 150 and set(ids.values()) == {1}
    assert sum(sent_by.values()) == 150
    assert set(OutboxEmail.objects.values_list("status", "attempts")) == {
        (OutboxEmail.Status.SENT, 1)
    }
