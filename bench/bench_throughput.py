"""Throughput of the client area's pages against the bare-Django floor, in one run.

    make bench-throughput             (SQLite in a temporary directory)
    BENCH_SECONDS=10 make bench-throughput

Goal (issue 15): every authenticated page at >= 0.5x the floor's requests per second
(stretch: 0.8x), on the same stack, measured in the same run.

What it does:
- builds the demo database (`manage.py migrate` and `load_demo`) in a temporary SQLite
  file, and the floor's (bench/floor/: a bare Django project, same Django, same database
  engine and options, sessions in the database) beside it;
- serves each with gunicorn and src/config/gunicorn.conf.py, as `make run` does (two
  processes of four threads, the access log on, written to a file here), with the
  settings `make run` uses but DEBUG off (config.settings.local, DEBUG=False, the demo's
  stand-ins; the API's per-token rate limit raised, since the bench is one token making
  thousands of calls: the limit's cache reads and writes are still made on every call);
- logs in through the login form (the owner; and webdev@example.com, a sub-account
  limited to one website, for the pages a scope changes), makes an API token for the
  owner, and drives each page with 8 keep-alive connections for BENCH_SECONDS (after
  a second of warm-up), printing requests per second and the ratio to the floor;
- first, as a reference outside the goal, a logged-in person's "not found" (404): all a
  page does before its view and the base template, with no work of its own.

The load generator is a small client here: 8 threads, each with one keep-alive
http.client connection, sending one request after another. It is used rather than a
load-testing package because it needs nothing installed, sends the session cookie or
the token exactly as a browser or script would, checks every answer's status, and
measures its own CPU time (printed), which a separate tool would hide. The machine
these run on may have only 2 cores, so the generator competes with the server for CPU:
the floor and the app are driven by the same generator with the same 8 connections,
one page at a time; and the floor is measured again after every few pages and each
page is compared with the mean of the floor runs just before and after it, so a machine
that gets busier or quieter during the run (other processes) does not tilt the ratio.
The "gen CPU" column is the share of one core the generator used: the part of the
machine the server did not get.

On a busy machine (other processes, other benchmarks) requests per second swing with
whatever else runs, so each measurement also reads the CPU time the server's processes
used (from /proc, Linux) and prints it per answer: "CPU ratio" is the floor's CPU time
per answer over the page's, the ratio the page reaches on a machine of its own, and far
steadier than the req/s ratio when the machine is shared. The goal counts both.
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
GUNICORN_CONF = ROOT / "src" / "config" / "gunicorn.conf.py"
PASSWORD = "correct-horse-battery-staple"
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
NOT_FOUND = "(not found, 404)"
WARMUP = float(os.environ.get("BENCH_WARMUP", "1"))
CONNECTIONS = 8
FLOOR_EVERY = 4  # pages between two measurements of the floor
GOAL, STRETCH = 0.5, 0.8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


# --- one HTTP client, as a browser or a script ------------------------------------------


@dataclass
class Session:
    port: int
    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = dict(self.headers)
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        for header in response.msg.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        conn.close()
        return response.status, dict(response.getheaders()), text

    def cookie_header(self) -> dict[str, str]:
        return {**self.headers, "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}


CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
FORM = re.compile(r'<form method="post".*?</form>', re.S)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
ACCOUNT = "Acme Web Studio"


def app_login(port: int, email: str) -> Session:
    session = Session(port)
    status, _, page = session.request("GET", "/login/")
    match = CSRF_FIELD.search(page)
    assert status == 200 and match, status
    form = {"csrfmiddlewaretoken": match.group(1), "username": email, "password": PASSWORD}
    status, _, _ = session.request("POST", "/login/", form)
    assert status == 302, (email, status)
    status, headers, page = session.request("GET", "/")
    if status == 302 and "/accounts/switch/" in headers.get("Location", ""):
        # A person with several accounts chooses one first: the demo's main account.
        status, _, page = session.request("GET", headers["Location"])
        form_html = next(f for f in FORM.findall(page) if ACCOUNT in f)
        session.request("POST", headers["Location"], dict(HIDDEN.findall(form_html)))
        status, _, page = session.request("GET", "/")
    assert status == 200 and "Dashboard" in page and ACCOUNT in page, (email, status)
    return session


def floor_login(port: int, email: str) -> Session:
    session = Session(port)
    status, _, _ = session.request("POST", "/login/", {"username": email, "password": PASSWORD})
    assert status == 302, status
    return session


# --- the load generator -------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    errors: int
    gen_cpu: float  # share of one core the generator used
    ms_mean: float
    server_ms: float  # the server's CPU time per answer (all its processes), or nan


def server_cpu_seconds(master: int) -> float:
    """CPU time (user + system) used so far by a gunicorn master and its workers, read
    from /proc (Linux); nan elsewhere. A worker replaced meanwhile takes its time along,
    so the run reports how many were (max_requests)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        stats = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stats.append(Path(f"/proc/{entry}/stat").read_text())
                except OSError:
                    continue  # gone meanwhile
        for stat in stats:
            pid, rest = stat.split(" ", 1)
            fields = rest.rsplit(")", 1)[1].split()  # after "(command name)"
            if int(pid) == master or int(fields[1]) == master:  # fields[1]: parent pid
                total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    except OSError:
        return float("nan")
    return total


def drive(port: int, path: str, headers: dict[str, str], master: int, expect: int = 200) -> Result:
    """CONNECTIONS threads, each one keep-alive connection sending GET `path` back to
    back, for WARMUP + SECONDS; counts the answers that end within the measured SECONDS,
    and the CPU time the server (gunicorn `master` and its workers) used meanwhile."""
    start = time.monotonic() + 0.2
    measure_from = start + WARMUP
    measure_to = measure_from + SECONDS
    counts = [0] * CONNECTIONS
    errors = [0] * CONNECTIONS
    busy = [0.0] * CONNECTIONS
    cpu: dict[str, float] = {}

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while time.monotonic() < start:
            time.sleep(0.001)
        while True:
            t0 = time.monotonic()
            if t0 >= measure_to:
                break
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == expect
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()  # a worker restarting (max_requests): reconnect
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
            t1 = time.monotonic()
            if measure_from <= t1 <= measure_to:
                counts[i] += 1
                busy[i] += t1 - t0
                errors[i] += not ok
        conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    while time.monotonic() < measure_from:
        time.sleep(0.01)
    cpu["from"] = time.process_time()
    cpu["server_from"] = server_cpu_seconds(master)
    while time.monotonic() < measure_to:
        time.sleep(0.01)
    cpu["to"] = time.process_time()
    cpu["server_to"] = server_cpu_seconds(master)
    for t in threads:
        t.join()
    done = sum(counts)
    return Result(
        rps=done / SECONDS,
        errors=sum(errors),
        gen_cpu=(cpu["to"] - cpu["from"]) / SECONDS,
        ms_mean=1000 * sum(busy) / done if done else float("nan"),
        server_ms=1000 * (cpu["server_to"] - cpu["server_from"]) / done if done else float("nan"),
    )


# --- set-up ---------------------------------------------------------------------------------


def serve(env: dict[str, str], app: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF)]
    cmd += ["--bind", f"127.0.0.1:{port}", app]
    server = subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"gunicorn ({app}) exited: see {log}")
        try:  # an answer, not only the socket: on a busy machine workers boot slowly
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/login/")
            conn.getresponse().read()
            conn.close()
            return server
        except (OSError, http.client.HTTPException):
            time.sleep(0.5)
    sys.exit(f"gunicorn ({app}) did not start: see {log}")


TOKEN_SCRIPT = """
from datetime import timedelta
from django.utils import timezone
from clientarea.accounts.models import Account, User
from clientarea.accounts.permissions import ALL_CODES
from clientarea.api.services import token_create
from clientarea.billing.models import Invoice
owner = User.objects.get(email="owner@example.com")
account = Account.objects.get(owner=owner, company_name="Acme Web Studio")
_, secret = token_create(account=account, actor=owner, name="Throughput bench",
    permission_codes=sorted(ALL_CODES), expires_at=timezone.now() + timedelta(days=1),
    manages_users=True)
invoice = Invoice.objects.filter(account=account).order_by("-issue_date", "-pk").first()
print(secret, invoice.pk)
"""


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="clientarea-throughput-"))
    app_port, floor_port = free_port(), free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    # No worker replaced mid-run (make run's max_requests bounds memory): a replaced worker
    # takes its CPU time along, and the page measured then read a negative CPU per answer.
    # (A replacement's start-up, about a second of CPU per 2,000 requests, is left out.)
    base_env["GUNICORN_MAX_REQUESTS"] = os.environ.get("GUNICORN_MAX_REQUESTS", "0")
    app_env = {
        **base_env,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DEBUG": "False",
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{tmp / 'app.sqlite3'}"),
        "EMAIL_URL": f"filemail://{tmp / 'mail'}",
        "MEDIA_ROOT": str(tmp / "media"),
        "DEMO_MAIL_DIR": str(tmp / "demo-mail"),
        "SECRET_KEY": secrets.token_urlsafe(50),
        "PORT": str(app_port),
        "API_RATE_LIMIT_REQUESTS": str(10**9),
        "GUNICORN_ACCESS_LOG": str(tmp / "app-access.log"),
        "GUNICORN_ERROR_LOG": str(tmp / "app-error.log"),
    }
    floor_env = {
        **base_env,
        "DJANGO_SETTINGS_MODULE": "floor.settings",
        "PYTHONPATH": str(BENCH),
        "DATABASE_URL": os.environ.get("FLOOR_DATABASE_URL", f"sqlite:///{tmp / 'floor.sqlite3'}"),
        "GUNICORN_ACCESS_LOG": str(tmp / "floor-access.log"),
        "GUNICORN_ERROR_LOG": str(tmp / "floor-error.log"),
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    print("Building the demo database and the floor's ...", flush=True)
    run([*manage, "migrate", "--noinput", "-v0"], app_env)
    run([*manage, "load_demo"], app_env)
    token, invoice_id = run([*manage, "shell", "-c", TOKEN_SCRIPT], app_env).split()[-2:]
    django = [sys.executable, "-m", "django"]
    run([*django, "migrate", "--noinput", "-v0"], floor_env)
    run([*django, "floor_user", "floor@example.com", PASSWORD], floor_env)

    servers = [
        serve(app_env, "config.wsgi:application", app_port, tmp / "app-server.log"),
        serve(floor_env, "floor.wsgi:application", floor_port, tmp / "floor-server.log"),
    ]
    try:
        owner = app_login(app_port, "owner@example.com").cookie_header()
        scoped = app_login(app_port, "webdev@example.com").cookie_header()
        floor = floor_login(floor_port, "floor@example.com").cookie_header()
        api = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        pages: list[tuple[str, str, dict[str, str]]] = [
            ("dashboard", "/", owner),
            ("invoice list", "/billing/", owner),
            ("an invoice", f"/billing/invoices/{invoice_id}/", owner),
            ("User Management", "/account/users/", owner),
            ("services", "/services/", owner),
            ("domains", "/domains/", owner),
            ("tickets", "/support/", owner),
            ("Email History", "/emails/", owner),
            ("Activity Log", "/activity/", owner),
            ("dashboard (scoped)", "/", scoped),
            ("services (scoped)", "/services/", scoped),
            ("domains (scoped)", "/domains/", scoped),
            ("tickets (scoped)", "/support/", scoped),
            *(
                (f"API {name}", f"/api/v1/{name}", api)
                for name in ("invoices", "services", "domains", "tickets", "emails", "users")
            ),
        ]
        # Not a goal, a reference: a logged-in person's 404 goes through everything a page
        # does before its view (session, user, the access query, the menu) and renders the
        # base template, with no work of its own: the most any page could reach.
        pages.insert(0, (NOT_FOUND, "/no-such-page/", owner))
        for label, path, headers in pages:  # each answers as expected before it is measured
            status, _, _ = Session(app_port, headers=headers).request("GET", path)
            assert status == (404 if label == NOT_FOUND else 200), (label, path, status)

        print(
            f"{CONNECTIONS} keep-alive connections, {WARMUP:g} s warm-up + {SECONDS:g} s per "
            f"page; {os.cpu_count()} cores; gunicorn as `make run` (2 processes x 4 threads)",
            flush=True,
        )
        print(f"{'page':<22}{'req/s':>8}{'ms':>8}{'server CPU ms':>15}{'gen CPU':>9}")
        floors: list[Result] = []
        measured: list[tuple[str, Result, int]] = []

        def show(label: str, result: Result) -> None:
            print(
                f"{label:<22}{result.rps:>8.0f}{result.ms_mean:>8.1f}{result.server_ms:>15.2f}"
                f"{result.gen_cpu:>9.0%}" + (f"  {result.errors} errors" if result.errors else ""),
                flush=True,
            )

        def measure_floor() -> None:
            floors.append(drive(floor_port, "/", floor, servers[1].pid))
            show("(floor)", floors[-1])

        measure_floor()
        for n, (label, path, headers) in enumerate(pages, 1):
            expect = 404 if label == NOT_FOUND else 200
            result = drive(app_port, path, headers, servers[0].pid, expect)
            measured.append((label, result, len(floors) - 1))
            show(label, result)
            if n % FLOOR_EVERY == 0 or n == len(pages):
                measure_floor()

        print(
            "\nratio = the page's req/s / the floor's (the mean of the floor runs just before and"
            "\nafter it); CPU ratio = the floor's server CPU time per answer / the page's: the"
            "\nratio the page would reach on a machine of its own (the better figure on a busy one)"
        )
        print(f"{'page':<22}{'req/s':>8}{'floor':>8}{'ratio':>7}{'CPU ratio':>11}")
        worst = worst_cpu = float("inf")
        errors = 0
        for label, result, before in measured:
            floor_rps = (floors[before].rps + floors[before + 1].rps) / 2
            floor_ms = (floors[before].server_ms + floors[before + 1].server_ms) / 2
            ratio, cpu_ratio = result.rps / floor_rps, floor_ms / result.server_ms
            errors += result.errors
            if label == NOT_FOUND:
                mark = "  (reference: no view of its own)"
            else:
                worst, worst_cpu = min(worst, ratio), min(worst_cpu, cpu_ratio)
                mark = "" if min(ratio, cpu_ratio) >= GOAL else "  <-- below the goal"
            note = f"  {result.errors} errors" if result.errors else ""
            print(
                f"{label:<22}{result.rps:>8.0f}{floor_rps:>8.0f}{ratio:>7.2f}{cpu_ratio:>11.2f}"
                f"{mark}{note}"
            )
        print(
            f"\nworst ratio {worst:.2f}, worst CPU ratio {worst_cpu:.2f} (goal {GOAL}, stretch "
            f"{STRETCH}); floor {min(f.rps for f in floors):.0f}-{max(f.rps for f in floors):.0f}"
            " req/s" + (f"; {errors} answers were not 200" if errors else "")
        )
        restarts = sum(
            (tmp / log).read_text().count("Autorestarting worker")
            for log in ("app-error.log", "floor-error.log")
        )
        print(f"gunicorn workers replaced (max_requests) during the run: {restarts}")
        sys.exit(0 if min(worst, worst_cpu) >= GOAL and not errors else 1)
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=30)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


if __name__ == "__main__":
    main()
