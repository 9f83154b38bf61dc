"""A month's partition made late, while the app goes on writing audit events: an event
committed by another connection in the middle of the move out of the default partition
is kept (it waits for the move, then lands in the new partition), never deleted uncopied.

The move runs in apply()'s transaction; the other connection is a thread's own, as the
app's processes have their own. The partitioning is committed here (the other connection
must see it), so the plain table is made again afterwards, as the migrations left it.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from clientarea.audit import partitioning
from clientarea.audit.models import AuditEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_plain_table_again() -> Iterator[None]:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (audit partitions)")
    yield
    if partitioning.is_partitioned():
        # The other tests of this database expect the table the migrations made.
        with connection.schema_editor() as editor:
            editor.execute(f"DROP TABLE {connection.ops.quote_name(partitioning.TABLE)}")
            editor.create_model(AuditEvent)


def _waiting_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"


def test_an_event_written_during_the_move_out_of_the_default_partition_is_kept() -> None:
    today = timezone.now().date()
    partitioning.apply(today=today)
    far = timezone.now() + datetime.timedelta(days=190)  # past the months made ahead
    month = partitioning.month_start(far.date())
    stray = AuditEvent.objects.create(action="test.stray", created_at=far)

    pid: list[int] = []
    errors: list[BaseException] = []
    started = threading.Event()

    def other_connection_writes() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pid.append(cursor.fetchone()[0])
            started.set()
            AuditEvent.objects.create(
                action="test.during_move", created_at=far + datetime.timedelta(hours=1)
            )
        except BaseException as exc:
            errors.append(exc)
            started.set()
        finally:
            connection.close()  # this thread's own connection

    writer = threading.Thread(target=other_connection_writes)
    state = {"fired": False, "checking": False}

    def after_the_move_reads_the_default(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        result = execute(sql, *args)
        # The first statement of the move that touches the default partition (not the
        # plan's SELECT): the other connection writes an event of that month now, and
        # the move goes on once it has been written or is waiting for a lock.
        if (
            not state["fired"]
            and not state["checking"]
            and partitioning.DEFAULT_PARTITION in sql
            and not sql.lstrip().upper().startswith("SELECT")
        ):
            state["fired"] = True
            writer.start()
            assert started.wait(10)
            state["checking"] = True
            try:
                for _ in range(1000):  # a safety bound: one of the two comes within ms
                    if not writer.is_alive() or (pid and _waiting_for_a_lock(pid[0])):
                        break
                    time.sleep(0.01)
            finally:
                state["checking"] = False
        return result

    with connection.execute_wrapper(after_the_move_reads_the_default):
        # Only that month is missing (the worker was stopped for months): the move is the
        # transaction's first statement (another partition made before it would lock the
        # default partition against the writer, and hide the race).
        made = partitioning.apply(today=far.date(), months_ahead=0)
    writer.join(10)
    assert not writer.is_alive()
    assert state["fired"]
    assert not errors
    assert any("ATTACH PARTITION" in sql for sql in made.statements)
    assert not any(" PARTITION OF " in sql for sql in made.statements)

    name = partitioning.partition_name(month)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT action FROM {name} ORDER BY action")
        assert cursor.fetchall() == [("test.during_move",), ("test.stray",)]
        cursor.execute(f"SELECT count(*) FROM {partitioning.DEFAULT_PARTITION}")
        assert cursor.fetchone()[0] == 0
    assert AuditEvent.objects.get(pk=stray.pk).action == "test.stray"
    assert AuditEvent.objects.filter(action="test.during_move").count() == 1
