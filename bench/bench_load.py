"""Load and memory (issue 15): 50 simulated customers for 2 minutes against gunicorn and
PostgreSQL, then the peak memory of every server process.

    make bench-load                          (a throwaway PostgreSQL 15 cluster of its own)
    DATABASE_URL=postgres://... make bench-load        (an empty database you give it)
    BENCH_USERS=50 BENCH_DURATION=2m make bench-load    (the defaults)

What it does:
- starts a PostgreSQL cluster as the `postgres` user (PostgreSQL refuses root) on a free
  loopback port in a temporary directory, unless DATABASE_URL is given; migrates;
- makes one login per simulated customer: owners of their own account and sub-accounts
  granted Invoices, Tickets, Email History, Products and Domains on an owner's account;
  each account has services, domains, tickets and unpaid invoices, and either a credit
  balance that pays them or a stored card (each login pays its own invoices, so two
  customers never race for one);
- serves with gunicorn and src/config/gunicorn.conf.py under production's settings
  (bench/load/bench_settings.py: DEBUG off, hashed and compressed static files, secure
  cookies) over HTTPS with a throwaway self-signed certificate, so the `__Host-` cookies
  and CSRF's origin checks work as they do in production; and the background worker
  (`manage.py run_worker`) beside it, which delivers the emails the run queues to files;
- DEMO_MODE is on: production refuses the stand-ins without it, and payments "by card"
  go to the in-process card sandbox, so nothing outside this machine is called;
- runs Locust headless (bench/load/locustfile.py) and reads its CSV statistics: p50, p95
  and p99 per page, errors, requests per second;
- samples every server process's resident memory (psutil, over the process tree) during
  the run and reads the kernel's high-water mark (VmHWM): the peak per process;
- and the CPU seconds gunicorn, the worker, PostgreSQL and Locust used: on a machine
  shared with other work, gunicorn's CPU time per request says more than latency does.

The login throttles count failed logins only (security.throttle), and every simulated
customer logs in with its own email and the right password, so they never refuse one;
nothing is configured differently for the benchmark.

The exit status is 1 if any request failed (a status that is not 2xx/3xx, an unexpected
redirect, or a page without its expected content).
"""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import json
import os
import re
import resource
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
LOAD_DIR = ROOT / "bench" / "load"
USERS = int(os.environ.get("BENCH_USERS", "50"))
SPAWN_RATE = os.environ.get("BENCH_SPAWN_RATE", "10")
DURATION = os.environ.get("BENCH_DURATION", "2m")
# The customers that own their account; the others are sub-accounts on the first owners'.
OWNERS = int(os.environ.get("BENCH_OWNERS", str(max(1, USERS * 3 // 5))))
UNPAID_PER_LOGIN = int(os.environ.get("BENCH_UNPAID_PER_LOGIN", "10"))
PASSWORD = "load-bench-" + secrets.token_urlsafe(12)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_postgres(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """PostgreSQL refuses to run as root: its commands run as the `postgres` user then."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, **kwargs)


class Postgres:
    """A throwaway PostgreSQL cluster on a free loopback port (as .ci/postgres-tests)."""

    def __init__(self) -> None:
        initdb = (
            shutil.which("initdb")
            or sorted(str(p) for p in Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1]
        )
        self.bin = Path(initdb).parent
        # A directory of its own (the postgres user cannot enter the benchmark's).
        self.dir = Path(tempfile.mkdtemp(prefix="clientarea-load-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        self.port = free_port()

    def start(self) -> str:
        data = self.dir / "db"
        as_postgres(
            [str(self.bin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "-E", "UTF8"], stdout=subprocess.DEVNULL,
        )  # fmt: skip
        # The server's defaults (durable commits), but for its socket directory and port.
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir}"
        as_postgres(
            [str(self.bin / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "log"), "-w",
             "-o", options, "start"], stdout=subprocess.DEVNULL,
        )  # fmt: skip
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as admin:
            admin.execute("CREATE DATABASE clientarea")
            row = admin.execute("SELECT version()").fetchone()
            version = str(row[0]).split(" on ")[0] if row else "PostgreSQL"
        print(f"{version}: a throwaway cluster on 127.0.0.1:{self.port}")
        return f"postgres://postgres@127.0.0.1:{self.port}/clientarea"

    def postmaster(self) -> int:
        return int((self.dir / "db" / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
            + [str(self.bin / "pg_ctl"), "-D", str(self.dir / "db"), "-m", "fast", "stop"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(self.dir, ignore_errors=True)


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid for a day: gunicorn serves HTTPS with it and
    Locust trusts it (REQUESTS_CA_BUNDLE), so production's secure cookies work."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def build(customers_file: Path) -> dict[str, int]:
    """The customers and what they browse and pay; their logins go to `customers_file`
    for the locustfile."""
    from django.db import transaction
    from django.utils import timezone

    from clientarea.accounts.permissions import Perm
    from clientarea.accounts.policy import access_for
    from clientarea.accounts.services import account_create, membership_grant, user_create
    from clientarea.billing import services as billing
    from clientarea.billing.gateways import SANDBOX
    from clientarea.billing.totals import LineInput
    from clientarea.domains import names
    from clientarea.domains.models import Domain
    from clientarea.hosting.models import Service
    from clientarea.notifications.models import OutboxEmail
    from clientarea.support.models import Department, Ticket
    from clientarea.support.services import ticket_open

    today = timezone.localdate()
    departments = [
        Department.objects.create(name=name, order=i)
        for i, name in enumerate(("Sales", "Technical Support", "Billing"), start=1)
    ]
    customers: list[dict[str, Any]] = []
    accounts = []
    for i in range(OWNERS):
        with transaction.atomic():
            owner = user_create(
                email=f"owner{i}@load.example.com", password=PASSWORD, first_name=f"Owner{i}"
            )
            # Even accounts pay by credit, odd ones by their stored card (the sandbox).
            by_credit = i % 2 == 0
            account = account_create(
                owner=owner,
                company_name=f"Load Customer {i} Ltd",
                country="IE",
                currency="EUR",
                credit_balance=Decimal("2000.00") if by_credit else Decimal("0.00"),
            )
            if not by_credit:
                billing.payment_method_store(
                    access=access_for(owner, account.pk),  # type: ignore[arg-type]
                    token=SANDBOX.test_token("visa", 8, today.year + 3),
                )
            for n, (product, price) in enumerate(
                (("cPanel Hosting · Business", "119.00"), ("VPS · 4 GB", "24.00"))
            ):
                service = Service(
                    account=account,
                    product_name=product,
                    domain=f"site{n}.customer{i}.example",
                    status=Service.Status.ACTIVE,
                    billing_cycle=Service.BillingCycle.MONTHLY,
                    amount=Decimal(price),
                    next_due_date=today + dt.timedelta(days=10 + n),
                    server_hostname="cp01.load.example",
                    username=f"cust{i}s{n}",
                )
                service.store_password(secrets.token_urlsafe(16))
                service.save()
            for n in range(3):
                Domain.objects.create(
                    account=account,
                    name=names.domain_name_normalise(f"customer{i}-{n}.com"),
                    status=Domain.Status.ACTIVE,
                    registration_date=today - dt.timedelta(days=300),
                    expiry_date=today + dt.timedelta(days=65 + n),
                    auto_renew=True,
                    registrar_lock=True,
                    nameservers=["ns1.load.example", "ns2.load.example"],
                )
            ticket_open(
                access=access_for(owner, account.pk),  # type: ignore[arg-type]
                department=departments[1],
                subject=f"Mail for customer{i}-0.com bounces",
                priority=Ticket.Priority.MEDIUM,
                body="Since this morning every message to the domain bounces.",
            )
        accounts.append((account, owner, by_credit, i))
        customers.append(_customer(owner.email, "owner", account, by_credit, i))
    for j in range(USERS - OWNERS):
        account, owner, by_credit, i = accounts[j % OWNERS]
        with transaction.atomic():
            person = user_create(
                email=f"sub{j}@load.example.com", password=PASSWORD, first_name=f"Sub{j}"
            )
            membership_grant(
                account=account,
                user=person,
                permission_codes=[
                    Perm.INVOICES, Perm.TICKETS, Perm.EMAILS, Perm.PRODUCTS, Perm.DOMAINS
                ],
                actor=owner,
                send_email=False,
            )  # fmt: skip
        customers.append(_customer(person.email, "sub-account", account, by_credit, i))
    # The invoices each login pays: its own, so two customers never race for one (that
    # race is the payment tests' business, not a load benchmark's).
    for customer in customers:
        for k in range(UNPAID_PER_LOGIN):
            invoice = billing.invoice_create(
                account=customer["_account"],
                issue_date=today - dt.timedelta(days=k),
                due_date=today + dt.timedelta(days=14 - k),
                lines=[
                    LineInput("Business Hosting (monthly)", Decimal("1"), Decimal("20.00"),
                              Decimal("23")),
                    LineInput("Daily off-site backups", Decimal("1"), Decimal("4.50"),
                              Decimal("23")),
                ],
            )  # fmt: skip
            invoice.refresh_from_db(fields=["number"])
            customer["invoices"].append({"id": invoice.pk, "number": invoice.number})
    # What the set-up queued (welcome and invoice emails) is history already: Email
    # History lists it, and the worker starts the run with nothing to catch up on.
    OutboxEmail.objects.filter(status=OutboxEmail.Status.PENDING).update(
        status=OutboxEmail.Status.SENT, sent_at=timezone.now()
    )
    for customer in customers:
        del customer["_account"]
    customers_file.write_text(json.dumps({"password": PASSWORD, "customers": customers}))
    return {
        "logins": len(customers),
        "owners": OWNERS,
        "sub-accounts": USERS - OWNERS,
        "invoices": sum(len(c["invoices"]) for c in customers),
    }


def _customer(email: str, role: str, account: Any, by_credit: bool, i: int) -> dict[str, Any]:
    return {
        "email": email,
        "role": role,
        "pays_by": "credit" if by_credit else "card",
        "company": account.company_name,
        "service": f"site0.customer{i}.example",
        "domain": f"customer{i}-0.com",
        "ticket": f"Mail for customer{i}-0.com bounces",
        "invoices": [],
        "_account": account,
    }


class MemorySampler(threading.Thread):
    """Every process of the gunicorn tree and the background worker, twice a second: its
    resident memory, and the kernel's high-water mark of it (VmHWM, which also catches a
    peak between two samples), and the CPU time it has used, so the report can say where
    the machine's time went. A gunicorn worker replaced during the run (max_requests)
    keeps its last reading. PostgreSQL's processes are sampled for their CPU time when
    the benchmark runs its own cluster."""

    def __init__(self, gunicorn: int, worker: int, postgres: int | None = None) -> None:
        super().__init__(daemon=True)
        self.gunicorn, self.worker, self.postgres = gunicorn, worker, postgres
        self.seen: dict[int, dict[str, Any]] = {}
        self.stopping = threading.Event()
        self.last = 0.0  # when the run ended: a process not seen since was replaced

    def sample(self) -> None:
        try:
            master = psutil.Process(self.gunicorn)
            tree = [(master, "gunicorn master")] + [
                (child, "gunicorn worker") for child in master.children(recursive=True)
            ]
        except psutil.NoSuchProcess:
            tree = []
        tree.append((psutil.Process(self.worker), "background worker"))
        if self.postgres is not None:
            try:
                postmaster = psutil.Process(self.postgres)
                tree += [(p, "postgres") for p in [postmaster, *postmaster.children()]]
            except psutil.NoSuchProcess:
                pass
        for proc, role in tree:
            try:
                rss = proc.memory_info().rss
                hwm = _vm_hwm(proc.pid)
                times = proc.cpu_times()
            except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError):
                continue
            cpu = times.user + times.system
            entry = self.seen.setdefault(
                proc.pid, {"role": role, "start": rss, "peak": 0, "cpu_start": cpu}
            )
            entry["now"], entry["cpu"] = rss, cpu
            entry["peak"] = max(entry["peak"], rss, hwm)
            entry["alive"] = time.monotonic()

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            self.sample()


def _vm_hwm(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def wait_until_serving(url: str, cafile: Path, process: subprocess.Popen[bytes]) -> None:
    context = ssl.create_default_context(cafile=str(cafile))
    for _ in range(240):
        if process.poll() is not None:
            raise SystemExit("gunicorn stopped while starting: see its log above.")
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} never answered.")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def report_stats(prefix: Path) -> tuple[int, int]:
    """Locust's per-page statistics; returns the numbers of failed and of all requests."""
    with open(f"{prefix}_stats.csv") as f:
        rows = list(csv.DictReader(f))
    print(f"\n{'page':<34}{'requests':>9}{'errors':>7}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}"
          f"{'max ms':>8}")  # fmt: skip
    total = None
    for row in rows:
        if row["Name"] == "Aggregated":
            total = row
            continue
        print(
            f"{row['Name']:<34}{row['Request Count']:>9}{row['Failure Count']:>7}"
            f"{row['50%']:>8}{row['95%']:>8}{row['99%']:>8}{float(row['Max Response Time']):>8.0f}"
        )
    assert total is not None
    print(
        f"{'all pages':<34}{total['Request Count']:>9}{total['Failure Count']:>7}"
        f"{total['50%']:>8}{total['95%']:>8}{total['99%']:>8}"
        f"{float(total['Max Response Time']):>8.0f}"
    )
    print(f"requests/s over the run: {float(total['Requests/s']):.1f}")
    with open(f"{prefix}_failures.csv") as f:
        failures = list(csv.DictReader(f))
    for row in failures[:20]:
        print(f"ERROR {row['Occurrences']}x {row['Method']} {row['Name']}: {row['Error']}")
    return int(total["Failure Count"]), int(total["Request Count"])


def report_memory(sampler: MemorySampler) -> None:
    mib = 1024 * 1024
    print(f"\n{'process':<20}{'pid':>8}{'RSS before':>12}{'peak RSS':>10}{'RSS after':>11}")
    for pid, entry in sorted(sampler.seen.items(), key=lambda kv: (kv[1]["role"], kv[0])):
        replaced = " (replaced during the run)" if entry["alive"] < sampler.last else ""
        start, peak, now = (entry[k] / mib for k in ("start", "peak", "now"))
        if entry["role"] != "postgres":
            print(
                f"{entry['role']:<20}{pid:>8}{start:>10.0f}MB{peak:>8.0f}MB{now:>9.0f}MB{replaced}"
            )


def report_cpu(sampler: MemorySampler, locust_cpu: float, requests: int) -> None:
    """CPU seconds each part used during the run: on a machine shared with other work
    (and with Locust), the server's CPU time per request says more than its latency."""
    by_role: dict[str, float] = {}
    for entry in sampler.seen.values():
        used = entry["cpu"] - entry["cpu_start"]
        by_role[entry["role"]] = by_role.get(entry["role"], 0.0) + used
    parts = ", ".join(f"{role} {seconds:.1f} s" for role, seconds in sorted(by_role.items()))
    print(f"CPU time during the run: {parts}, Locust {locust_cpu:.1f} s")
    web = by_role.get("gunicorn worker", 0.0) + by_role.get("gunicorn master", 0.0)
    if requests:
        print(f"gunicorn CPU per request: {1000 * web / requests:.0f} ms (all pages, logins too)")


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="clientarea-load-"))
    postgres = None
    children: list[subprocess.Popen[bytes]] = []
    try:
        database_url = os.environ.get("DATABASE_URL")
        if not database_url:
            postgres = Postgres()
            database_url = postgres.start()
        port = free_port()
        site = f"https://127.0.0.1:{port}"
        cert, key = self_signed(tmp)
        from cryptography.fernet import Fernet

        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(LOAD_DIR)]),
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "DATABASE_URL": database_url,
            "SECRET_KEY": secrets.token_urlsafe(64),
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DEMO_MODE": "true",
            "DEBUG": "false",
            "BENCH_STATIC_ROOT": str(tmp / "static"),
            "MEDIA_ROOT": str(tmp / "media"),
            "EMAIL_URL": f"filemail://{tmp / 'mail'}",
            "SITE_URL": site,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "GUNICORN_ACCESS_LOG": str(tmp / "access.log"),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        os.environ.update(env)
        sys.path[:0] = [str(ROOT / "src"), str(LOAD_DIR)]
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        t1 = time.perf_counter()
        call_command("collectstatic", interactive=False, verbosity=0)
        t2 = time.perf_counter()
        customers_file = tmp / "customers.json"
        built = build(customers_file)
        print(
            f"set-up: migrate {t1 - t0:.0f} s, collectstatic {t2 - t1:.0f} s, data "
            f"{time.perf_counter() - t2:.0f} s: {built}"
        )
        connections.close_all()

        log = open(tmp / "server.log", "wb")  # noqa: SIM115 (open for the whole run)
        manage = str(ROOT / "manage.py")
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "src/config/gunicorn.conf.py"),
             "--certfile", str(cert), "--keyfile", str(key)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        children.append(gunicorn)
        worker = subprocess.Popen(
            [sys.executable, manage, "run_worker"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        children.append(worker)
        wait_until_serving(f"{site}/login/", cert, gunicorn)
        sampler = MemorySampler(
            gunicorn.pid, worker.pid, postgres.postmaster() if postgres is not None else None
        )
        sampler.sample()
        workers = sum(1 for e in sampler.seen.values() if e["role"] == "gunicorn worker")
        print(
            f"gunicorn: {workers} processes x {os.environ.get('GUNICORN_THREADS', '4')} threads "
            f"(src/config/gunicorn.conf.py), HTTPS on {site}; the background worker beside it"
        )
        sampler.start()

        locust = Path(sys.executable).parent / "locust"
        prefix = tmp / "locust"
        print(f"Locust: {USERS} customers, spawned {SPAWN_RATE}/s, for {DURATION} ...")
        started = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        run = subprocess.run(
            [str(locust), "-f", str(LOAD_DIR / "locustfile.py"), "--headless",
             "-u", str(USERS), "-r", SPAWN_RATE, "-t", DURATION, "--host", site,
             "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING",
             "--stop-timeout", "30"],
            env={**env, "BENCH_LOAD_CUSTOMERS": str(customers_file),
                 "REQUESTS_CA_BUNDLE": str(cert)},
            capture_output=True, text=True,
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)  # Locust's, the only one waited
        locust_cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        sampler.stopping.set()
        sampler.join()
        sampler.sample()
        sampler.last = time.monotonic() - 1.0
        if run.returncode not in (0, 1):  # 1: some requests failed, reported below
            print(run.stdout[-5000:], run.stderr[-5000:])
            return 2
        errors, requests = report_stats(prefix)
        retried = sum("Retrying (" in line for line in run.stderr.splitlines())
        print(
            f"GETs sent again after the server closed an idle kept-alive connection at the "
            f"same instant (as browsers do; not counted as errors): {retried}"
        )
        report_memory(sampler)
        report_cpu(sampler, locust_cpu, requests)

        from clientarea.billing.models import Invoice
        from clientarea.notifications.models import OutboxEmail

        time.sleep(3)  # the worker's last turn
        paid = Invoice.objects.filter(status=Invoice.Status.PAID).count()
        outbox = {
            status: OutboxEmail.objects.filter(status=status).count()
            for status in OutboxEmail.Status.values
        }
        print(f"\ninvoices paid during the run: {paid}; outbox after it: {outbox}")
        # Every payment the server made should be one Locust recorded; one more means a
        # customer was stopped at the end of the run while its payment was being answered.
        pay_answered = re.compile(r'"POST /billing/invoices/\d+/pay/ HTTP/1\.1" 302 ')
        answered = len(pay_answered.findall((tmp / "access.log").read_text(errors="replace")))
        with open(f"{prefix}_stats.csv") as f:
            recorded = sum(
                int(row["Request Count"])
                for row in csv.DictReader(f)
                if row["Name"].startswith("pay: by")
            )
        print(f"payments the server answered (access log): {answered}; Locust recorded: {recorded}")
        cpu = os.cpu_count()
        load1, load5, _ = os.getloadavg()
        print(
            f"machine: {cpu} CPU cores shared by everything (Locust, gunicorn, the worker, "
            f"PostgreSQL, and whatever else runs); load average at the end {load1:.1f} (1 min),"
            f" {load5:.1f} (5 min); the run took {elapsed:.0f} s"
        )
        log.close()
        server_errors = [
            line
            for line in (tmp / "server.log").read_text(errors="replace").splitlines()
            if "Traceback" in line or "ERROR" in line or "CRITICAL" in line
        ]
        for line in server_errors[:20]:
            print("server log:", line)
        print(f"\nresult: {'0 errors' if errors == 0 else f'{errors} ERRORS'}")
        return 0 if errors == 0 and not server_errors else 1
    finally:
        for child in reversed(children):
            stop(child)
        if postgres is not None:
            if "django.db" in sys.modules:
                from django.db import connections as _connections

                _connections.close_all()
            postgres.stop()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
