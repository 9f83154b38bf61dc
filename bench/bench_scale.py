"""Scale (issue 15, P3): the pages of a large account on a large PostgreSQL database.

    make bench-scale
    DATABASE_URL=postgres://... make bench-scale      (a database of your own)

Without DATABASE_URL it starts a throwaway PostgreSQL cluster (initdb/pg_ctl, as the
``postgres`` user when run as root, on a free loopback port, fsync off) and removes it at
the end. It migrates, then generates in SQL (``INSERT ... SELECT generate_series``, never
the ORM row by row) 100,000 accounts, each with an owner, and 1,000,000 invoices with
their lines, spread as a provider's are: most accounts have a few invoices, a few have
thousands, one *large* account has 20,000 (with its people, services, domains, tickets,
emails and audit events in proportion) and a *comparison* account 1,000. It then:

- measures p50 and p99 latency (django.test.Client, DEBUG off, the two accounts' requests
  interleaved so that the machine's noise falls on both alike) of the invoice list (first
  and last page), the dashboard, User Management, services, domains, tickets, Email
  History and the Activity Log, and prints large / comparison ratios. Target: p99 of the
  invoice list, the dashboard and User Management at most 1.2x the comparison's;
- runs ``EXPLAIN (ANALYZE, FORMAT JSON)`` on every SELECT those pages run and reports any
  sequential scan of a big table and any sort or aggregate over many rows.

Sizes: BENCH_ACCOUNTS, BENCH_INVOICES, BENCH_LARGE, BENCH_COMPARE; BENCH_REQUESTS requests
per page and account. A database that already holds the generated data is reused (the
generation is skipped), so a second run measures again after a change (e.g. a migration).
Exit status 1 when a list query scans a big table sequentially.
"""

from __future__ import annotations

import atexit
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "100000"))
INVOICES = int(os.environ.get("BENCH_INVOICES", "1000000"))
LARGE = int(os.environ.get("BENCH_LARGE", "20000"))
COMPARE = int(os.environ.get("BENCH_COMPARE", "1000"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "200"))
TARGET = 1.2
DOMAIN = "scale.example"  # every generated address; also how a reused database is known


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd


def start_cluster() -> str:
    """A throwaway cluster, as .ci/postgres-tests starts one; stopped and removed at exit."""
    initdb = shutil.which("initdb") or sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1]
    bindir = Path(initdb).resolve().parent  # the server's own directory, not a symlink's
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = Path(tempfile.mkdtemp(prefix="clientarea-scale-"))
    if os.getuid() == 0:
        shutil.chown(data, "postgres")
    db = data / "db"

    def stop() -> None:
        subprocess.run(
            _as_postgres([str(bindir / "pg_ctl"), "-D", str(db), "-m", "fast", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)

    atexit.register(stop)
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(db), "-U", "postgres", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c maintenance_work_mem=256MB "
        "-c max_wal_size=4GB -c shared_buffers=512MB -c work_mem=64MB"
    )
    pg_ctl = [str(bindir / "pg_ctl"), "-D", str(db), "-l", str(data / "log"), "-w"]
    subprocess.run(
        _as_postgres([*pg_ctl, "-o", options, "start"]),
        check=True,
        capture_output=True,
    )
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as c:
        c.execute("CREATE DATABASE clientarea")
    print(f"PostgreSQL started on 127.0.0.1:{port} (throwaway, fsync off)")
    return f"postgres://postgres@127.0.0.1:{port}/clientarea"


if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = start_cluster()
elif not os.environ["DATABASE_URL"].startswith(("postgres://", "postgresql://")):
    sys.exit("bench_scale measures PostgreSQL: DATABASE_URL must be a postgres:// URL")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402

# The generation, one statement a step. %(name)s are the sizes and id offsets below.
# Invoice g (1..N) goes to the large account when g is a multiple of N/LARGE, to the
# comparison account when g % (N/COMPARE) = 1, else to one of the others drawn with a
# skew (random()^2: the first accounts have thousands, most a handful, some none). Rows
# are inserted in time order, so an account's rows lie scattered through the table as
# they would after years of use. The large account's people, services, domains and
# tickets grow with its invoices (1 person a 100 invoices, 1 service and 1 domain a 50,
# 1 ticket a 10); the comparison account's too, with at least a full page of each.
STEPS: list[tuple[str, str]] = [
    (
        "owners",
        """INSERT INTO accounts_user (id, password, is_superuser, email, first_name, last_name,
            is_active, is_staff, date_joined, time_zone)
        SELECT %(u0)s + k, '!', false, 'owner' || k || '@' || %(domain)s, 'Owner', k::text,
            true, false, now() - interval '5 years', 'Europe/Dublin'
        FROM generate_series(1, %(accounts)s) k""",
    ),
    (
        "accounts",
        """INSERT INTO accounts_account (id, company_name, address_line1, address_line2, city,
            postcode, country, currency, credit_balance, created_at, owner_id,
            owner_email_kinds_off, tax_number)
        SELECT %(a0)s + k, 'Company ' || k, k || ' Main Street', '', 'Dublin', 'D01', 'IE',
            'EUR', 0, now() - interval '5 years', %(u0)s + k, '[]'::jsonb, ''
        FROM generate_series(1, %(accounts)s) k""",
    ),
    (
        "members",
        # Member j: the large account's first, then the comparison's, then one for every
        # tenth account.
        """INSERT INTO accounts_user (id, password, is_superuser, email, first_name, last_name,
            is_active, is_staff, date_joined, time_zone)
        SELECT %(u0)s + %(accounts)s + j, '!', false, 'member' || j || '@' || %(domain)s,
            (ARRAY['Ann', 'Bob', 'Cara', 'Dan', 'Eve'])[1 + j %% 5], 'Member ' || j, true, false,
            now() - interval '2 years', 'UTC'
        FROM generate_series(1, %(members)s) j""",
    ),
    (
        "memberships",
        """INSERT INTO accounts_membership (permissions, status, expires_at, created_at,
            revoked_at, account_id, user_id, scope)
        SELECT '["invoices", "tickets", "emails"]'::jsonb,
            CASE WHEN j %% 10 = 0 THEN 'revoked' ELSE 'active' END, NULL,
            now() - interval '1 year',
            CASE WHEN j %% 10 = 0 THEN now() - interval '1 month' END,
            %(a0)s + CASE WHEN j <= %(large_members)s THEN 1
                WHEN j <= %(large_members)s + %(compare_members)s THEN 2
                ELSE 10 * (j - %(large_members)s - %(compare_members)s) END,
            %(u0)s + %(accounts)s + j, NULL
        FROM generate_series(1, %(members)s) j""",
    ),
    (
        "invoices",
        """INSERT INTO billing_invoice (number, status, currency, issue_date, due_date, notes,
            subtotal, tax, total, amount_paid, billing_name, billing_address, paid_at,
            created_at, account_id, tax_number)
        SELECT %(n0)s + g, s.status, 'EUR', s.issued, s.issued + 14, '',
            s.lines * s.price, s.lines * s.tax, s.lines * (s.price + s.tax),
            CASE WHEN s.status = 'paid' THEN s.lines * (s.price + s.tax) ELSE 0 END,
            'Company ' || (s.account - %(a0)s), 'Main Street', CASE WHEN s.status = 'paid'
                THEN s.issued + time '10:00' END,
            s.issued + time '09:00', s.account, ''
        FROM (
            SELECT g, 1 + g %% 3 AS lines, (5 + g %% 20)::numeric(12, 2) AS price,
                round((5 + g %% 20) * 0.23, 2) AS tax,
                current_date - ((%(invoices)s - g)::bigint * 1825 / %(invoices)s)::int
                    AS issued,
                CASE WHEN g %% (%(invoices)s / %(large)s) = 0 THEN %(a0)s + 1
                    WHEN g %% (%(invoices)s / %(compare)s) = 1 THEN %(a0)s + 2
                    ELSE %(a0)s + 3 + floor(power(random(), 2) * (%(accounts)s - 2))::int
                END AS account,
                CASE WHEN g > %(invoices)s - %(invoices)s * 45 / 1825 AND g %% 2 = 0
                        THEN 'unpaid'
                    WHEN g %% 97 = 0 THEN 'unpaid'
                    WHEN g %% 53 = 0 THEN 'cancelled'
                    WHEN g %% 211 = 0 THEN 'refunded'
                    ELSE 'paid' END AS status
            FROM generate_series(1, %(invoices)s) g
        ) s
        ORDER BY g""",
    ),
    (
        "invoice lines",
        """INSERT INTO billing_invoiceline (position, description, quantity, unit_price,
            tax_rate, net_amount, tax_amount, invoice_id, item)
        SELECT p, 'Hosting, month ' || p, 1, 5 + (i.number - %(n0)s) %% 20, 23,
            5 + (i.number - %(n0)s) %% 20, round((5 + (i.number - %(n0)s) %% 20) * 0.23, 2),
            i.id, ''
        FROM billing_invoice i, generate_series(1, 1 + (i.number - %(n0)s) %% 3) p
        WHERE i.number > %(n0)s
        ORDER BY i.id, p""",
    ),
    ("invoice counter", "UPDATE billing_invoicecounter SET last_number = %(n0)s + %(invoices)s"),
    (
        "services",
        """INSERT INTO hosting_service (product_name, domain, status, billing_cycle, amount,
            next_due_date, server_hostname, username, password_ciphertext, created_at,
            account_id)
        SELECT (ARRAY['cPanel Business', 'cPanel Starter', 'VPS 2GB'])[1 + s %% 3],
            'site' || acc || '-' || s || '.' || %(domain)s,
            CASE WHEN s %% 25 = 0 THEN 'suspended' ELSE 'active' END, 'monthly', 9.99,
            current_date + s %% 30, '', 'u' || acc || 'x' || s, '', now() - interval '3 years',
            acc
        FROM (
            SELECT %(a0)s + 1 AS acc, s FROM generate_series(1, %(large_items)s) s
            UNION ALL SELECT %(a0)s + 2, s FROM generate_series(1, %(compare_items)s) s
            UNION ALL SELECT %(a0)s + k, s FROM generate_series(3, %(accounts)s) k,
                generate_series(1, 1 + (k %% 3 = 0)::int) s
        ) x""",
    ),
    (
        "domains",
        """INSERT INTO domains_domain (name, status, registration_date, expiry_date,
            auto_renew, registrar_lock, nameservers, created_at, account_id)
        SELECT 'd' || acc || '-' || s || '.' || %(domain)s, 'active',
            current_date - 700 + s %% 300, current_date + (s * 7) %% 730, true, true,
            '["ns1.example.net", "ns2.example.net"]'::jsonb, now() - interval '3 years', acc
        FROM (
            SELECT %(a0)s + 1 AS acc, s FROM generate_series(1, %(large_items)s) s
            UNION ALL SELECT %(a0)s + 2, s FROM generate_series(1, %(compare_items)s) s
            UNION ALL SELECT %(a0)s + k, s FROM generate_series(3, %(accounts)s) k,
                generate_series(1, 1 + (k %% 2 = 0)::int) s
        ) x""",
    ),
    (
        "scopes",
        # Every seventh sub-account of the two measured accounts is limited to two items.
        """UPDATE accounts_membership m SET scope = jsonb_build_object(
            'service', jsonb_build_array((SELECT min(id) FROM hosting_service
                WHERE account_id = m.account_id)),
            'domain', jsonb_build_array((SELECT min(id) FROM domains_domain
                WHERE account_id = m.account_id)))
        WHERE m.account_id IN (%(a0)s + 1, %(a0)s + 2) AND m.user_id %% 7 = 0""",
    ),
    (
        "invitations",
        """INSERT INTO accounts_invitation (email, permissions, status, token_hash, expires_at,
            created_at, sent_at, account_id, invited_by_id)
        SELECT 'invitee' || i || '@' || %(domain)s, '["invoices"]'::jsonb,
            CASE WHEN i %% 3 = 0 THEN 'pending' ELSE 'accepted' END,
            md5(acc || '-' || i), now() + interval '7 days' - i * interval '1 hour',
            now() - i * interval '1 hour', now() - i * interval '1 hour', acc, acc - %(a0)s + %(u0)s
        FROM (
            SELECT %(a0)s + 1 AS acc, i FROM generate_series(1, %(large_invites)s) i
            UNION ALL SELECT %(a0)s + 2, i FROM generate_series(1, %(compare_invites)s) i
        ) x""",
    ),
    (
        "tickets",
        """INSERT INTO support_ticket (opener_name, opener_email, subject, priority, status,
            created_at, updated_at, account_id, department_id, opener_id)
        SELECT 'Owner', 'owner' || (acc - %(a0)s) || '@' || %(domain)s, 'Question ' || t,
            'medium', CASE WHEN t %% 20 = 0 THEN 'answered' WHEN t %% 7 = 0 THEN 'open'
                ELSE 'closed' END,
            now() - (t * 17 %% 1800) * interval '1 day',
            now() - (t * 17 %% 1800) * interval '1 day' + interval '2 hours', acc,
            %(department)s, acc - %(a0)s + %(u0)s
        FROM (
            SELECT %(a0)s + 1 AS acc, t FROM generate_series(1, %(large_tickets)s) t
            UNION ALL SELECT %(a0)s + 2, t FROM generate_series(1, %(compare_tickets)s) t
            UNION ALL SELECT %(a0)s + 5 * k, k FROM generate_series(1, %(accounts)s / 5) k
        ) x
        ORDER BY 6""",
    ),
    (
        "ticket messages",
        """INSERT INTO support_ticketmessage (author_name, author_email, is_staff, body,
            created_at, author_id, ticket_id)
        SELECT CASE WHEN m = 1 THEN t.opener_name ELSE 'Support' END,
            CASE WHEN m = 1 THEN t.opener_email ELSE '' END, m = 2,
            'Hello, this is message ' || m || ' of the ticket.',
            t.created_at + (m - 1) * interval '2 hours',
            CASE WHEN m = 1 THEN t.opener_id END, t.id
        FROM support_ticket t, generate_series(1, 2) m
        WHERE t.account_id > %(a0)s""",
    ),
    (
        "emails",
        # One email per invoice and per ticket, sent to the owner.
        """INSERT INTO notifications_outboxemail (kind, to_email, to_name, subject, body_text,
            status, attempts, next_attempt_at, last_error, created_at, sent_at, account_id,
            body_after_send, claim_token, audience, recipient_user_id, about_kind)
        SELECT kind, 'owner' || (account_id - %(a0)s) || '@' || %(domain)s, 'Owner', subject,
            'Hello, see the client area.', 'sent', 1, created_at, '', created_at, created_at,
            account_id, '', '', 'owner', account_id - %(a0)s + %(u0)s, ''
        FROM (
            SELECT 'invoice' AS kind, 'Invoice #' || number AS subject, created_at, account_id
            FROM billing_invoice WHERE number > %(n0)s
            UNION ALL SELECT 'support', 'Ticket answered: ' || subject, updated_at, account_id
            FROM support_ticket WHERE account_id > %(a0)s
        ) x
        ORDER BY created_at""",
    ),
    (
        "audit events",
        # Each invoice issued, each one paid, each ticket opened.
        """INSERT INTO audit_auditevent (actor_label, is_staff_action, action, target_type,
            target_id, target_label, changes, created_at, account_id, actor_id)
        SELECT label, false, action, target_type, target_id, target_label, '{}'::jsonb,
            created_at, account_id, actor_id
        FROM (
            SELECT '' AS label, 'invoice.created' AS action, 'invoice' AS target_type,
                id::text AS target_id, 'Invoice #' || number AS target_label, created_at,
                account_id, NULL::bigint AS actor_id
            FROM billing_invoice WHERE number > %(n0)s
            UNION ALL SELECT 'Owner', 'invoice.paid', 'invoice', id::text,
                'Invoice #' || number, paid_at, account_id, account_id - %(a0)s + %(u0)s
            FROM billing_invoice WHERE number > %(n0)s AND status = 'paid'
            UNION ALL SELECT 'Owner', 'ticket.opened', 'ticket', id::text, subject,
                created_at, account_id, opener_id
            FROM support_ticket WHERE account_id > %(a0)s
        ) x
        ORDER BY created_at""",
    ),
]


BULK_TABLES = (
    "billing_invoice",
    "billing_invoiceline",
    "notifications_outboxemail",
    "audit_auditevent",
)


def sizes() -> dict[str, Any]:
    # The comparison account has at least a full first page of every list (30 > the pages'
    # 20 or 25 rows), so a ratio measures growth with the data, not a fuller page.
    large_members, compare_members = LARGE // 100, max(30, COMPARE // 100)
    return {
        "accounts": ACCOUNTS,
        "invoices": INVOICES,
        "large": LARGE,
        "compare": COMPARE,
        "domain": DOMAIN,
        "large_members": large_members,
        "compare_members": compare_members,
        "members": large_members + compare_members + ACCOUNTS // 10,
        "large_items": LARGE // 50,
        "compare_items": max(30, COMPARE // 50),
        "large_tickets": LARGE // 10,
        "compare_tickets": COMPARE // 10,
        "large_invites": LARGE // 400,
        "compare_invites": LARGE // 400,  # a few: both accounts show the same
    }


def generate() -> dict[str, float]:
    from clientarea.billing.models import InvoiceCounter
    from clientarea.support.models import Department

    assert INVOICES % LARGE == 0 and INVOICES % COMPARE == 0 and ACCOUNTS >= 10
    assert (INVOICES // COMPARE) % (INVOICES // LARGE) == 0  # the two never pick one g
    params = sizes()
    department, _ = Department.objects.get_or_create(name="Technical Support")
    counter, _ = InvoiceCounter.objects.get_or_create(pk=1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM accounts_user")
        params["u0"] = cursor.fetchone()[0]
        cursor.execute("SELECT coalesce(max(id), 0) FROM accounts_account")
        params["a0"] = cursor.fetchone()[0]
        cursor.execute("SELECT setseed(0.15)")
    params.update(n0=counter.last_number, department=department.pk)
    timings: dict[str, float] = {}
    # One transaction: a failed load leaves nothing behind (not even dropped indexes).
    with transaction.atomic(), connection.cursor() as cursor:
        # As bulk loaders do: the big tables' secondary indexes are dropped during the load
        # and built again after it (a build is far cheaper than a million random inserts).
        # Indexes behind a constraint (primary keys, unique) stay.
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = ANY(%s::regclass[]) AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint WHERE conindid = indexrelid)",
            [list(BULK_TABLES)],
        )
        rebuild = cursor.fetchall()
        for name, _ in rebuild:
            cursor.execute(f"DROP INDEX {name}")
        for label, sql in STEPS:
            t0 = time.perf_counter()
            cursor.execute(sql, params)
            timings[label] = time.perf_counter() - t0
            print(f"  {label:<16}{cursor.rowcount:>11,} rows {timings[label]:>7.1f} s", flush=True)
        t0 = time.perf_counter()
        # The foreign keys are checked at commit; CREATE INDEX wants them checked first.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for _, definition in rebuild:
            cursor.execute(definition)
        took = timings["checks, indexes"] = time.perf_counter() - t0
        print(f"  {'checks, indexes':<16}{len(rebuild):>11,} built {took:>6.1f} s")
    with connection.cursor() as cursor:
        # Explicit ids were given to users and accounts: move their sequences past them.
        for table in ("accounts_user", "accounts_account"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
            )
        t0 = time.perf_counter()
        # VACUUM as well: autovacuum would have set the visibility map of a table this old,
        # which index-only scans need.
        cursor.execute("VACUUM ANALYZE")
        timings["vacuum analyze"] = time.perf_counter() - t0
        print(f"  {'vacuum analyze':<27}{timings['vacuum analyze']:>13.1f} s")
    return timings


def measured_accounts() -> tuple[Any, Any]:
    from clientarea.accounts.models import Account

    large = Account.objects.get(owner__email=f"owner1@{DOMAIN}")
    compare = Account.objects.get(owner__email=f"owner2@{DOMAIN}")
    return large, compare


def client_for(account: Any) -> Client:
    client = Client()
    client.force_login(account.owner)
    session = client.session
    session["current_account_id"] = account.pk
    session["reauth_at"] = int(time.time())
    session.save()
    return client


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def pages_for(account: Any) -> dict[str, str]:
    from clientarea.billing.views import PAGE_SIZE

    last = max(1, math.ceil(account.invoices.count() / PAGE_SIZE))
    return {
        "invoice list": "/billing/",
        "invoices, last page": f"/billing/?page={last}",
        "dashboard": "/",
        "User Management": "/account/users/",
        "services": "/services/",
        "domains": "/domains/",
        "tickets": "/support/",
        "Email History": "/emails/",
        "Activity Log": "/activity/",
    }


def measure(clients: dict[str, Client], urls: dict[str, str]) -> dict[str, list[float]]:
    """Requests to the two accounts alternate, so a busy moment of the machine slows both."""
    times: dict[str, list[float]] = {name: [] for name in clients}
    for name, client in clients.items():
        for _ in range(5):  # warm: templates, the connection, the database's cache
            assert client.get(urls[name]).status_code == 200, (name, urls[name])
    for _ in range(REQUESTS):
        for name, client in clients.items():
            t0 = time.perf_counter()
            response = client.get(urls[name])
            times[name].append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, (name, urls[name], response.status_code)
    return times


def big_tables(threshold: int = 10_000) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND reltuples > %s "
            "AND relnamespace = 'public'::regnamespace",
            [threshold],
        )
        return {row[0] for row in cursor.fetchall()}


def plan_findings(plan: dict[str, Any], big: set[str], many: int = 1000) -> list[str]:
    """Sequential scans of big tables; sorts and aggregates reading many rows (a sort or
    count over the whole account rather than an index walk that stops at the page)."""
    found = []
    node = plan.get("Node Type", "")
    rows = plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1)
    if node == "Seq Scan" and plan.get("Relation Name") in big:
        found.append(f"Seq Scan on {plan['Relation Name']} ({rows:,} rows)")
    children = plan.get("Plans", [])
    read = sum(c.get("Actual Rows", 0) * c.get("Actual Loops", 1) for c in children)
    if node in ("Sort", "Incremental Sort", "Aggregate", "HashAggregate") and read > many:
        what = ", ".join(plan.get("Sort Key", [])) or plan.get("Strategy", "")
        found.append(f"{node} over {read:,} rows ({what})")
    for child in children:
        found.extend(plan_findings(child, big, many))
    return found


def scans(plan: dict[str, Any]) -> list[str]:
    out = []
    if "Relation Name" in plan and "Scan" in plan.get("Node Type", ""):
        index = plan.get("Index Name")
        on = f" ({index})" if index else ""
        out.append(f"{plan['Node Type']} {plan['Relation Name']}{on}")
    for child in plan.get("Plans", []):
        out.extend(scans(child))
    return out


def explain_page(client: Client, url: str, big: set[str]) -> list[tuple[str, list[str], str]]:
    connection.queries_log.clear()
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    statements = [q["sql"] for q in captured.captured_queries]
    results = []
    with connection.cursor() as cursor:
        for sql in statements:
            if not sql.lstrip().upper().startswith("SELECT") or " FOR UPDATE" in sql.upper():
                continue
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
            raw = cursor.fetchone()[0]
            plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
            results.append((sql, plan_findings(plan, big), ", ".join(scans(plan))))
    return results


def short(sql: str, width: int = 150) -> str:
    sql = re.sub(r'"[a-z_]+"\."([a-z_]+)"', r"\1", sql)  # "table"."column" -> column
    sql = re.sub(r"SELECT .*? FROM", "SELECT ... FROM", sql, count=1, flags=re.S)
    return sql if len(sql) <= width else sql[: width - 3] + "..."


def database_size() -> tuple[int, list[tuple[str, int]]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_database_size(current_database())")
        total = cursor.fetchone()[0]
        cursor.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class WHERE relkind = 'r' "
            "AND relnamespace = 'public'::regnamespace ORDER BY 2 DESC LIMIT 8"
        )
        return total, cursor.fetchall()


def main() -> None:
    from clientarea.accounts.models import User

    setup_test_environment()
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"migrated in {time.perf_counter() - t0:.1f} s")
    if User.objects.filter(email=f"owner1@{DOMAIN}").exists():
        print("the database already holds the generated data: reusing it")
    else:
        print(
            f"generating {ACCOUNTS:,} accounts and {INVOICES:,} invoices "
            f"(large account {LARGE:,}, comparison {COMPARE:,}):"
        )
        t0 = time.perf_counter()
        generate()
        print(f"generation time: {time.perf_counter() - t0:.1f} s")
    total, tables = database_size()
    print(f"database size: {total / 2**20:,.0f} MiB; largest tables (with indexes):")
    for name, size in tables:
        print(f"  {name:<28}{size / 2**20:>8,.0f} MiB")

    large, compare = measured_accounts()
    clients = {"large": client_for(large), "compare": client_for(compare)}
    urls = {"large": pages_for(large), "compare": pages_for(compare)}
    print(
        f"\nlatency, {REQUESTS} requests per page and account (django.test.Client, DEBUG off); "
        f"large = {large.invoices.count():,} invoices, comparison = "
        f"{compare.invoices.count():,}"
    )
    heads = ("p50 large", "p99 large", "p50 cmp", "p99 cmp", "p99 ratio")
    print(f"{'page':<22}" + "".join(f"{h:>10}" for h in heads))
    misses = []
    for page in urls["large"]:
        times = measure(clients, {name: urls[name][page] for name in clients})
        p50l, p99l = percentile(times["large"], 50), percentile(times["large"], 99)
        p50c, p99c = percentile(times["compare"], 50), percentile(times["compare"], 99)
        ratio = p99l / p99c
        targeted = page in ("invoice list", "dashboard", "User Management")
        mark = ""
        if targeted:
            mark = "  ok" if ratio <= TARGET else f"  MISSED (target <= {TARGET}x)"
            if ratio > TARGET:
                misses.append(page)
        print(f"{page:<22}{p50l:>10.1f}{p99l:>10.1f}{p50c:>10.1f}{p99c:>10.1f}{ratio:>9.2f}x{mark}")

    big = big_tables()
    print(
        f"\nEXPLAIN (ANALYZE) of every SELECT of those pages, large account; big tables: "
        f"{', '.join(sorted(big))}"
    )
    bad_scan = False
    seen: set[str] = set()
    for page, url in urls["large"].items():
        for sql, findings, used in explain_page(clients["large"], url, big):
            key = re.sub(r"\d+", "N", sql)
            if key in seen:
                continue
            seen.add(key)
            if findings:
                bad_scan |= any(f.startswith("Seq Scan") for f in findings)
                print(f"  [{page}] {short(sql)}\n      {'; '.join(findings)}\n      scans: {used}")
    if not bad_scan:
        print("  no sequential scan of a big table")
    if misses:
        print(f"latency target missed: {', '.join(misses)}")
    sys.exit(1 if bad_scan else 0)


if __name__ == "__main__":
    main()
