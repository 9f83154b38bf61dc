"""Page cost at scale: latency, queries and peak memory of the busiest client-area pages,
with a small and a large account, plus outbox worker throughput.

    make bench            (SQLite in a temporary file)
    DATABASE_URL=postgres://... make bench

Targets (DESIGN.md "Growing past one machine"): a page's query count does not change
with the amount of data, and its time and memory stay flat (within noise) from the small
to the large account, because every list is paginated and indexed by account first.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
_tmp = tempfile.mkdtemp(prefix="clientarea-bench-")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{_tmp}/bench.sqlite3")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

SIZES = {"small": 10, "large": int(os.environ.get("BENCH_LARGE", "5000"))}
REPEAT = int(os.environ.get("BENCH_REPEAT", "15"))


def build(size_name: str, n: int):
    from clientarea.accounts.models import Membership
    from clientarea.accounts.services import account_create, user_create
    from clientarea.billing.models import Invoice, InvoiceCounter
    from clientarea.notifications.models import OutboxEmail
    from clientarea.support.models import Department, Ticket

    owner = user_create(email=f"owner-{size_name}@example.com", password=None, first_name="O")
    account = account_create(owner=owner, company_name=f"Bench {size_name}")
    today = timezone.localdate()
    counter, _ = InvoiceCounter.objects.get_or_create(pk=1)
    start = counter.last_number
    Invoice.objects.bulk_create(
        Invoice(
            account=account,
            number=start + i + 1,
            currency="EUR",
            issue_date=today - timedelta(days=i % 400),
            due_date=today - timedelta(days=i % 400) + timedelta(days=14),
            subtotal=Decimal("100.00"),
            tax=Decimal("23.00"),
            total=Decimal("123.00"),
            status=Invoice.Status.PAID if i % 3 else Invoice.Status.UNPAID,
        )
        for i in range(n)
    )
    counter.last_number = start + n
    counter.save()
    users = [
        user_create(email=f"u{i}-{size_name}@example.com", password=None, first_name=f"U{i}")
        for i in range(max(2, n // 50))
    ]
    Membership.objects.bulk_create(
        Membership(account=account, user=u, permissions=["invoices", "tickets"]) for u in users
    )
    dept, _ = Department.objects.get_or_create(name="Technical Support")
    Ticket.objects.bulk_create(
        Ticket(
            account=account,
            opener=owner,
            opener_name="O",
            opener_email=owner.email,
            department=dept,
            subject=f"Ticket {i}",
        )
        for i in range(n // 5)
    )
    OutboxEmail.objects.bulk_create(
        OutboxEmail(account=account, to_email=owner.email, subject=f"Mail {i}", body_text="x")
        for i in range(n // 5)
    )
    return owner, account


def measure(client: Client, url: str) -> tuple[float, int, float]:
    client.get(url)  # warm caches, templates
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    connection.queries_log.clear()  # a full log (maxlen) would hide new queries
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    query_count = len(queries)  # read now: the log is a view on the connection's deque
    tracemalloc.start()
    client.get(url)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), query_count, peak / 1024


def bench_worker(n: int) -> float:
    from clientarea.notifications.models import OutboxEmail
    from clientarea.notifications.services import outbox_deliver_due

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    OutboxEmail.objects.filter(status=OutboxEmail.Status.PENDING).delete()
    OutboxEmail.objects.bulk_create(
        OutboxEmail(to_email=f"r{i}@example.com", subject="s", body_text="b") for i in range(n)
    )
    t0 = time.perf_counter()
    sent = 0
    while True:
        stats = outbox_deliver_due(batch_size=100)
        if not stats["sent"] and not stats["failed"]:
            break
        sent += stats["sent"]
    elapsed = time.perf_counter() - t0
    assert sent == n, sent
    return n / elapsed


def main() -> None:
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections, reset_queries

    setup_test_environment()
    # As Django's test runner does: keep one connection and its query log across requests.
    request_started.disconnect(reset_queries)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    call_command("migrate", verbosity=0)
    pages = {
        "dashboard": "/",
        "invoice list": "/billing/",
        "unpaid invoices": "/billing/?status=unpaid",
        "User Management": "/account/users/",
        "tickets": "/support/",
        "email history": "/emails/",
        "activity log": "/activity/",
    }
    results: dict[str, dict[str, tuple[float, int, float]]] = {}
    for size_name, n in SIZES.items():
        owner, account = build(size_name, n)
        client = Client()
        client.force_login(owner)
        session = client.session
        session["current_account_id"] = account.pk
        session["reauth_at"] = int(time.time())
        session.save()
        results[size_name] = {label: measure(client, url) for label, url in pages.items()}
    large = SIZES["large"]
    print(
        f"engine: {connection.vendor}; small = 10 invoices, large = {large} invoices, "
        f"{large // 50} users, {large // 5} tickets and emails; median of {REPEAT}"
    )
    print(f"{'page':<18}{'ms small':>10}{'ms large':>10}{'queries':>10}{'KiB peak s/l':>16}")
    ok = True
    for label in pages:
        ms_s, q_s, kb_s = results["small"][label]
        ms_l, q_l, kb_l = results["large"][label]
        flag = "" if q_s == q_l else "  <-- queries grow"
        ok &= q_s == q_l
        print(
            f"{label:<18}{ms_s:>10.1f}{ms_l:>10.1f}{q_s:>5} / {q_l:<3}"
            f"{kb_s:>8.0f}/{kb_l:<7.0f}{flag}"
        )
    rate = bench_worker(2000)
    print(f"outbox worker: {rate:,.0f} emails/s delivered (locmem backend, batches of 100)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
