"""Paying the same invoice twice at the same moment charges once (PostgreSQL).

The owner and the accountant each open the pay page (each gets their own idempotency
key), then both submit at the same moment from two threads, each thread with its own
database connection.

Step A (record the payment as processing) holds the invoice row lock: the first request
to take it waits there until PostgreSQL reports the other request's backend waiting on
that lock, so the two really overlap. The first records its payment as processing and
commits; the second then finds that payment and is told it is already being processed.

Step B (the charge) holds no lock: the first request's charge waits until the second
request has been answered, which could not happen if the charge still held the invoice
lock. The card is charged once, and the invoice ends paid once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account, Membership
from clientarea.billing import gateways, services
from clientarea.billing.models import Invoice, Transaction

from .factories import make_invoice, make_payment_method

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _others_waiting_on_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def test_owner_and_accountant_paying_at_once_charge_once(
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite has no row locks to race against")
    method = make_payment_method(account)
    invoice = make_invoice(account)
    clients = [
        login_client(account.owner, account),
        login_client(member_factory("invoices").user, account),
    ]
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    forms = [
        {
            "method": f"card-{method.pk}",
            "idempotency_key": c.get(url).context["form"]["idempotency_key"].value(),
        }
        for c in clients
    ]
    assert forms[0]["idempotency_key"] != forms[1]["idempotency_key"]

    which = threading.local()  # the index of the request a thread serves
    answered = [threading.Event(), threading.Event()]
    first_check = threading.Lock()
    saw_the_other_waiting: list[bool] = []
    # Patched where card_payment_begin looks it up.
    real_check = services.cards._check_payable

    def check_payable(invoice: Invoice, source: services.PaySource) -> None:
        # The first request to hold the invoice lock keeps it until the other request is
        # blocked on it (or gives up after a while, which the assertion below reports).
        if first_check.acquire(blocking=False):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if _others_waiting_on_a_lock():
                    saw_the_other_waiting.append(True)
                    break
                time.sleep(0.02)
        real_check(invoice, source)

    real_charge = gateways.SANDBOX.charge
    charge_calls: list[str] = []
    other_answered_during_charge: list[bool] = []

    def charge(**kwargs: Any) -> gateways.ChargeResult:
        charge_calls.append(kwargs["idempotency_key"])
        # No lock is held here: the other request is answered meanwhile.
        other_answered_during_charge.append(answered[1 - which.index].wait(timeout=20))
        return real_charge(**kwargs)

    start = threading.Barrier(2)
    responses: list[Any] = [None, None]
    errors: list[BaseException] = []

    def submit(i: int) -> None:
        which.index = i
        try:
            start.wait()
            responses[i] = clients[i].post(url, forms[i])
        except BaseException as exc:  # report in the main thread
            errors.append(exc)
        finally:
            answered[i].set()
            connections.close_all()

    gateways.SANDBOX.charge = charge
    services.cards._check_payable = check_payable
    try:
        threads = [threading.Thread(target=submit, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        del gateways.SANDBOX.charge  # back to the class's method
        services.cards._check_payable = real_check

    assert errors == []
    assert saw_the_other_waiting == [True], "the two payments did not overlap"
    assert len(charge_calls) == 1
    assert other_answered_during_charge == [True], "the charge held the other payer back"
    tx = Transaction.objects.get(invoice=invoice)
    assert tx.status == Transaction.Status.SUCCEEDED and tx.idempotency_key == charge_calls[0]
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.PAID
    assert invoice.amount_paid == invoice.total
    paid, refused = sorted(responses, key=lambda r: r.status_code, reverse=True)
    assert paid.status_code == 302
    assert refused.status_code == 200
    assert "already being processed" in refused.content.decode()
    assert refused.context["form"] is None  # not offered to pay again
