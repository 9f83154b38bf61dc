"""API list endpoints at scale: an account with 10 objects of each kind against one with
5,000, through a personal access token, in the same run.

    make bench            (SQLite in a temporary file; runs this after bench_pages.py)
    DATABASE_URL=postgres://... .venv/bin/python bench/bench_api.py

Target (issue "A REST API with scoped personal access tokens"): the number of queries of
each list is the same at 10 and at 5,000 objects (cursor pagination, no N+1), and its
time stays flat. Exits non-zero when a query count grows.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
_tmp = tempfile.mkdtemp(prefix="clientarea-bench-api-")
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
LISTS = {
    "invoices": "/api/v1/invoices",
    "unpaid invoices": "/api/v1/invoices?status=unpaid",
    "services": "/api/v1/services",
    "domains": "/api/v1/domains",
    "tickets": "/api/v1/tickets",
    "contacts": "/api/v1/contacts",
    "emails": "/api/v1/emails",
    "users": "/api/v1/users",
    "invitations": "/api/v1/invitations",
}


def build(size_name: str, n: int) -> str:
    """An account with `n` objects of every listed kind; its owner's token's secret."""
    from clientarea.accounts import permissions
    from clientarea.accounts.models import Contact, Invitation, Membership
    from clientarea.accounts.services import account_create, user_create
    from clientarea.api.models import ApiToken
    from clientarea.api.services import token_create
    from clientarea.billing.models import Invoice, InvoiceCounter
    from clientarea.domains.models import Domain
    from clientarea.hosting.models import Service
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
    Service.objects.bulk_create(
        Service(
            account=account,
            product_name=f"cPanel Hosting {i}",
            domain=f"site{i}.{size_name}.example",
            status=Service.Status.ACTIVE,
            billing_cycle=Service.BillingCycle.MONTHLY,
            amount=Decimal("9.99"),
            next_due_date=date(2030, 1, 1),
            server_hostname="cp1.hosting.example",
            username=f"u{size_name[0]}{i}",
        )
        for i in range(n)
    )
    Domain.objects.bulk_create(
        Domain(
            account=account,
            name=f"d{i}.{size_name}.example",
            status=Domain.Status.ACTIVE,
            registration_date=date(2024, 1, 10),
            expiry_date=date(2030, 1, 10),
            nameservers=["ns1.host.example", "ns2.host.example"],
        )
        for i in range(n)
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
        for i in range(n)
    )
    OutboxEmail.objects.bulk_create(
        OutboxEmail(
            account=account,
            to_email=owner.email,
            subject=f"Mail {i}",
            body_text="x",
            kind=OutboxEmail.Kind.INVOICE,
            audience=OutboxEmail.Audience.OWNER,
        )
        for i in range(n)
    )
    users = [
        user_create(email=f"u{i}-{size_name}@example.com", password=None, first_name=f"U{i}")
        for i in range(n)
    ]
    Membership.objects.bulk_create(
        Membership(account=account, user=u, permissions=["invoices", "tickets"]) for u in users
    )
    Contact.objects.bulk_create(
        Contact(account=account, name=f"C {i}", email=f"c{i}-{size_name}@example.com")
        for i in range(n)
    )
    Invitation.objects.bulk_create(
        Invitation(
            account=account,
            email=f"i{i}-{size_name}@example.com",
            permissions=["invoices"],
            invited_by=owner,
            token_hash=f"{size_name}-{i}",
            expires_at=timezone.now() + timedelta(days=7),
        )
        for i in range(n)
    )
    options = {}
    if "manages_users" in {f.name for f in ApiToken._meta.get_fields()}:
        options["manages_users"] = True
    _, secret = token_create(
        account=account,
        actor=owner,
        name="Bench",
        permission_codes=sorted(permissions.ALL_CODES),
        expires_at=timezone.now() + timedelta(days=30),
        **options,
    )
    return secret


def measure(client: Client, url: str, secret: str) -> tuple[float, int, int]:
    auth = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    first = client.get(url, **auth)  # warm caches
    assert first.status_code == 200, (url, first.status_code, first.content[:200])
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        response = client.get(url, **auth)
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as queries:
        client.get(url, **auth)
    return statistics.median(times), len(queries), len(first.json()["results"])


def main() -> None:
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections, reset_queries

    setup_test_environment()
    request_started.disconnect(reset_queries)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    settings.API_RATE_LIMIT = (10**9, 60)  # measuring the lists, not the rate limit
    call_command("migrate", verbosity=0)
    results: dict[str, dict[str, tuple[float, int, int]]] = {}
    for size_name, n in SIZES.items():
        secret = build(size_name, n)
        client = Client()
        results[size_name] = {label: measure(client, url, secret) for label, url in LISTS.items()}
    large = SIZES["large"]
    print(
        f"engine: {connection.vendor}; small = 10, large = {large} objects of each kind; "
        f"first page (20 rows) through a token; median of {REPEAT}"
    )
    print(f"{'list':<18}{'ms small':>10}{'ms large':>10}{'ratio':>8}{'queries s / l':>16}")
    ok = True
    for label in LISTS:
        ms_s, q_s, rows_s = results["small"][label]
        ms_l, q_l, rows_l = results["large"][label]
        flag = "" if q_s == q_l else "  <-- queries grow"
        ok &= q_s == q_l
        print(
            f"{label:<18}{ms_s:>10.1f}{ms_l:>10.1f}{ms_l / ms_s:>8.2f}{q_s:>9} / {q_l:<5}"
            f" ({rows_s}/{rows_l} rows){flag}"
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
