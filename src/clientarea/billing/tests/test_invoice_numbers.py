"""Invoice numbers are taken last: the counter row is locked only from the instant the
number is taken to the commit, not while the invoice's lines and email are written
(``services.invoices.invoice_create``, ``InvoiceCounter``); and no number is lost."""

from __future__ import annotations

import datetime
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clientarea.accounts.models import Account
from clientarea.audit.models import AuditEvent
from clientarea.billing import services
from clientarea.billing.models import Invoice, InvoiceCounter
from clientarea.billing.services import invoices as invoices_module
from clientarea.billing.totals import LineInput
from clientarea.notifications.models import OutboxEmail

D = Decimal


def _issue(account: Account, description: str = "Hosting") -> Invoice:
    return services.invoice_create(
        account=account,
        lines=[LineInput(description, D("1"), D("10.00"), D("0"))],
        due_date=timezone.localdate() + datetime.timedelta(days=14),
    )


@pytest.mark.django_db
def test_the_number_is_the_last_thing_taken_and_only_own_rows_follow(account: Account) -> None:
    _issue(account)  # the counter row exists from here on
    with CaptureQueriesContext(connection) as ctx:
        invoice = _issue(account)
    sqls = [q["sql"] for q in ctx.captured_queries]
    counter = InvoiceCounter._meta.db_table
    taking = [i for i, sql in enumerate(sqls) if sql.startswith(f'UPDATE "{counter}"')]
    assert len(taking) == 1, sqls
    after = sqls[taking[0] + 1 :]
    # The invoice's lines and its emails were written before the number was taken.
    before = " ".join(sqls[: taking[0]])
    assert 'INSERT INTO "billing_invoiceline"' in before
    assert 'INSERT INTO "notifications_outboxemail"' in before
    # After it, only this transaction's own rows (the number put in place) and the audit
    # event (append-only, so written once the number is known): nothing that can wait on
    # another transaction's lock, no read of anyone else's rows.
    # (The test's own transaction makes the invoice's a savepoint: its release is the
    # commit here.)
    statements = [sql for sql in after if "SAVEPOINT" not in sql]
    assert [sql.split(" (")[0].split(" SET ")[0] for sql in statements] == [
        'UPDATE "billing_invoice"',
        'UPDATE "notifications_outboxemail"',
        'INSERT INTO "audit_auditevent"',
    ], after
    # The stand-in is gone everywhere: the invoice, its emails and its audit event say the
    # real number.
    invoice.refresh_from_db()
    assert invoice.number == InvoiceCounter.objects.get().last_number
    emails = OutboxEmail.objects.filter(subject__contains=f"#{invoice.number}:")
    assert emails.exists()
    for email in emails:
        assert f"Invoice:   #{invoice.number}\n" in email.body_text
    assert not OutboxEmail.objects.filter(body_text__regex=r"#N[0-9a-f]{32}").exists()
    event = AuditEvent.objects.get(action="invoice.created", target_id=str(invoice.pk))
    assert event.target_label == f"Invoice #{invoice.number}"


@pytest.mark.django_db
def test_a_rolled_back_invoice_loses_no_number(account: Account) -> None:
    first = _issue(account)
    with pytest.raises(RuntimeError), transaction.atomic():
        _issue(account)
        raise RuntimeError("the caller's transaction fails after the invoice")
    assert InvoiceCounter.objects.get().last_number == first.number
    assert _issue(account).number == first.number + 1
    assert not Invoice.objects.filter(number__isnull=True).exists()


@pytest.mark.django_db
def test_a_fresh_database_starts_at_one(account: Account) -> None:
    InvoiceCounter.objects.all().delete()
    assert _issue(account).number == 1
    assert _issue(account).number == 2


@pytest.mark.django_db
def test_without_returning_the_number_is_read_back(account: Account, monkeypatch: Any) -> None:
    """An SQLite before 3.35 has no UPDATE ... RETURNING: the same numbers all the same."""
    if connection.vendor != "sqlite":
        pytest.skip("an old SQLite's fallback (the flag also steers Django's own INSERTs)")
    monkeypatch.setattr(connection.features, "can_return_columns_from_insert", False)
    InvoiceCounter.objects.all().delete()
    assert [_issue(account).number for _ in range(3)] == [1, 2, 3]


# --- PostgreSQL: two invoices issued at the same moment ------------------------------------


def _waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_second_invoice_does_not_wait_for_the_first_ones_lines_and_email(
    account: Account, monkeypatch: Any
) -> None:
    """The first invoice stops while writing its email (its lines are written, its
    transaction open); the second is issued, numbered and committed meanwhile. Then the
    first stops again after taking its number: a third now waits on the counter row, until
    the first commits: the lock is held only from the number to the commit."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has one writer, so nothing runs side by side")
    _issue(account)  # the counter row exists
    in_email, release_email = threading.Event(), threading.Event()
    numbered, release_numbered = threading.Event(), threading.Event()
    real_notify, real_take = invoices_module.notify, invoices_module._take_number

    def slow_notify(**kwargs: Any) -> Any:
        if threading.current_thread().name == "first":
            in_email.set()
            assert release_email.wait(20)
        return real_notify(**kwargs)

    def slow_take() -> int:
        number = real_take()
        if threading.current_thread().name == "first":
            numbered.set()
            assert release_numbered.wait(20)
        return number

    monkeypatch.setattr(invoices_module, "notify", slow_notify)
    monkeypatch.setattr(invoices_module, "_take_number", slow_take)
    results: dict[str, Invoice] = {}
    errors: list[BaseException] = []

    def issue(name: str) -> None:
        try:
            results[name] = _issue(account, name)
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    first = threading.Thread(target=issue, args=("first",), name="first")
    first.start()
    assert in_email.wait(20)
    # The first invoice is inside its transaction, its lines written, writing its email.
    second = threading.Thread(target=issue, args=("second",), name="second")
    second.start()
    second.join(20)
    assert not second.is_alive(), "the second invoice waited for the first one's email"
    assert "second" in results and errors == []
    release_email.set()
    assert numbered.wait(20)
    # The first holds the counter row now (number taken, not yet committed): a third
    # invoice is written but waits for the commit to take its number.
    third = threading.Thread(target=issue, args=("third",), name="third")
    third.start()
    deadline = time.monotonic() + 20
    while not _waiting_on_a_lock() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _waiting_on_a_lock() == 1 and third.is_alive()
    release_numbered.set()
    first.join(20)
    third.join(20)
    assert errors == []
    numbers = [results[name].number for name in ("second", "first", "third")]
    assert numbers[1] == numbers[0] + 1 and numbers[2] == numbers[1] + 1  # no gap
    assert InvoiceCounter.objects.get().last_number == numbers[2]
    assert not Invoice.objects.filter(number__isnull=True).exists()
