"""The outbox under failure (issue 15, P5): 10,000 emails, 3 worker processes, a real SMTP
server that goes away and comes back, and a worker killed with SIGKILL mid-batch.

    make bench-outbox                          (a throwaway PostgreSQL 15 cluster)
    DATABASE_URL=postgres://... make bench-outbox
    .venv/bin/python bench/bench_outbox_failure.py --emails 2000 --workers 3

What it does, in one run:
1. starts a throwaway PostgreSQL cluster (initdb/pg_ctl, as the ``postgres`` user when run
   as root, on a free loopback port, fsync off) unless DATABASE_URL is given, and migrates;
2. queues the emails through the real service (``notify``: the owners of 100 accounts);
3. starts an aiosmtpd server on a loopback port whose handler records every message's
   Message-ID and which worker sent it (each worker has its own envelope sender);
4. starts the worker processes (``manage.py run_worker``, EMAIL_URL pointing at it);
5. at 20% delivered, stops the SMTP server for a few seconds and restarts it on the port;
6. at 50%, SIGKILLs worker 1 while it is in the middle of a batch (its SMTP session has
   delivered some of its batch), then starts it again, as a supervisor would;
7. waits until the outbox is drained, and reports: received, distinct Message-IDs, lost
   (queued, never received), duplicates, emails in doubt (the worker logs), mails per
   second per worker, total time.

The claim (OUTBOX_CLAIM_SECONDS) is 15 s here instead of 300, so the batch the killed
worker held is taken over within the run, and retries back off from 1 s instead of 30
(the workers' shared back-off while the SMTP server is down: at most 4 s, not 300). The
outage uses up no attempt of the emails waiting, only one of the email each worker was
sending when the server went away (its connection lost mid-send is that email's: see
``outbox_deliver_due``), and is logged at ERROR once, not per email.

Expected: 0 lost. Duplicates: 0, except that SMTP cannot rule out one: the server
accepted a message (answered 250 to the final dot) and the worker died before recording
it as sent. No SMTP command asks a server whether it has a message, so the next worker
cannot tell this from a death just before the server accepted; it sends it again with the
same Message-ID (a recipient's mail system folds the copies). Each such duplicate is an
email the workers logged as in doubt; a duplicate that is not is a bug (exit 1). The same
holds when the server drops the connection between storing a message and its 250 reply.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# What a worker logs for an email that may have reached the server without that being
# recorded (services.IN_DOUBT: a worker died mid-send; services.CUT_OFF: the connection
# was lost mid-send).
IN_DOUBT_LOG = "may have accepted it"
OUTAGE_LOG = "The mail server is unreachable ("
MESSAGE_ID = re.compile(rb"^Message-ID:\s*(<[^>\r\n]+>)", re.MULTILINE | re.IGNORECASE)
SENDER = re.compile(r"worker(\d+)@")
ACCOUNTS = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.getuid() == 0 else cmd


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """A throwaway cluster, as .ci/postgres-tests starts one; stopped and removed after."""
    initdb = shutil.which("initdb") or str(
        sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1]
    )
    bindir = Path(initdb).resolve().parent  # through a symlink in PATH to the real directory
    data = Path(tempfile.mkdtemp(prefix="clientarea-outbox-pg-"))
    if os.getuid() == 0:
        shutil.chown(data, "postgres")
    db, port = data / "db", free_port()
    run = {"check": True, "stdout": subprocess.DEVNULL}
    subprocess.run(
        _as_postgres([initdb, "-D", str(db), "-U", "postgres", "--auth=trust", "-E", "UTF8"]), **run
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {data} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    pg_ctl = str(bindir / "pg_ctl")
    log = str(data / "log")
    subprocess.run(
        _as_postgres([pg_ctl, "-D", str(db), "-l", log, "-w", "-o", options, "start"]), **run
    )
    try:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True
        ) as c:
            c.execute("CREATE DATABASE clientarea")
        yield f"postgres://postgres@127.0.0.1:{port}/clientarea"
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(db), "-m", "immediate", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shutil.rmtree(data, ignore_errors=True)


class Recorder:
    """aiosmtpd handler: every message's Message-ID, which worker sent it (its envelope
    sender) and when; and how many messages each open SMTP session has delivered."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[str, int, float]] = []
        self.sessions: dict[int, list[int]] = {}  # id(session) -> [worker, delivered]
        self.last_from: dict[int, tuple[int, float]] = {}  # worker -> (id(session), time)
        # --kill-after-accept: the handler itself kills worker 1 (this pid), once its
        # session has delivered a few messages, after storing the next one and before
        # answering 250: the one case where a message goes twice.
        self.kill_pid = 0
        self.killed_after = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        found = MESSAGE_ID.search(envelope.content)
        sender = SENDER.search(envelope.mail_from or "")
        worker = int(sender.group(1)) if sender else 0
        now = time.monotonic()
        with self.lock:
            self.received.append((found.group(1).decode() if found else "", worker, now))
            state = self.sessions.setdefault(id(session), [worker, 0])
            state[1] += 1
            self.last_from[worker] = (id(session), now)
            if self.kill_pid and worker == 1 and state[1] >= 3:
                os.kill(self.kill_pid, signal.SIGKILL)
                self.kill_pid, self.killed_after = 0, state[1]
        return "250 Message accepted for delivery"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.sessions.pop(id(session), None)
        return "221 Bye"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def mid_batch(self, worker: int, batch: int) -> int:
        """How many messages `worker`'s open session has delivered, when it is in the
        middle of a batch (some delivered, more to come, the last one just now); else 0."""
        with self.lock:
            session, at = self.last_from.get(worker, (0, 0.0))
            state = self.sessions.get(session)
            if state is None or time.monotonic() - at > 0.05:
                return 0
            return state[1] if 3 <= state[1] <= batch - 10 else 0


class SMTPServer:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.port = free_port()
        self.controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def queue_emails(n: int) -> tuple[list[int], float]:
    """n emails through the real service (notify), as account news to 100 owners."""
    from django.db import transaction

    from clientarea.accounts.permissions import EmailKind
    from clientarea.accounts.services import account_create, user_create
    from clientarea.notifications.services import notify

    accounts = []
    for i in range(ACCOUNTS):
        owner = user_create(email=f"owner{i}@example.com", password=None, first_name=f"O{i}")
        accounts.append(account_create(owner=owner, company_name=f"Outbox bench {i}"))
    t0 = time.perf_counter()
    pks: list[int] = []
    for start in range(0, n, 500):
        with transaction.atomic():
            for i in range(start, min(start + 500, n)):
                rows = notify(
                    account=accounts[i % ACCOUNTS],
                    kind=EmailKind.GENERAL,
                    template="notifications/email/notice",
                    context={"subject": f"Notice {i}", "body": f"Bench notice number {i}."},
                )
                pks.extend(r.pk for r in rows)
    return pks, time.perf_counter() - t0


def outbox_left() -> dict[str, int]:
    from django.db.models import Count

    from clientarea.notifications.models import OutboxEmail

    rows = OutboxEmail.objects.order_by().values("status").annotate(n=Count("pk"))
    return {r["status"]: r["n"] for r in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--outage", type=float, default=4.0, help="seconds the SMTP server is down")
    parser.add_argument(
        "--kill-after-accept",
        action="store_true",
        help="kill worker 1 after the server stored a message, before its 250 reply",
    )
    parser.add_argument(
        "--timeout", type=float, default=1800, help="give up after this many seconds"
    )
    args = parser.parse_args()
    # Progress shows as it happens, even when the output goes to a file.
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    with contextlib.ExitStack() as stack:
        url = os.environ.get("DATABASE_URL") or stack.enter_context(postgres())
        return run(url, args)


def run(url: str, args: argparse.Namespace) -> int:
    settings = {
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DEBUG": "false",
        "DEMO_MODE": "false",
        "OUTBOX_CLAIM_SECONDS": "15",
        "OUTBOX_RETRY_BASE_SECONDS": "1",
        # The workers' shared back-off while the server is down: 1, 2, 4 s, at most 4.
        "OUTBOX_SERVER_RETRY_MAX_SECONDS": "4",
        "EMAIL_TIMEOUT": "2",
    }
    os.environ.update(settings)
    import django

    django.setup()
    import logging

    from django.core.management import call_command

    # aiosmtpd logs every command it receives at INFO: in this process, not the report.
    logging.getLogger("mail.log").setLevel(logging.WARNING)

    from clientarea.notifications.models import OutboxEmail

    call_command("migrate", verbosity=0)
    if OutboxEmail.objects.exists():
        print("The outbox of this database is not empty: use an empty database.")
        return 2
    pks, queue_seconds = queue_emails(args.emails)
    n = len(pks)
    print(f"queued {n} emails through notify() in {queue_seconds:.1f} s")

    recorder = Recorder()
    server = SMTPServer(recorder)
    server.start()
    logs = Path(tempfile.mkdtemp(prefix="clientarea-outbox-logs-"))

    def start_worker(number: int, generation: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            **settings,
            "EMAIL_URL": f"smtp://127.0.0.1:{server.port}",
            "DEFAULT_FROM_EMAIL": f"Outbox bench <worker{number}@example.com>",
            "PYTHONUNBUFFERED": "1",
        }
        log = open(logs / f"worker{number}.{generation}.log", "wb")  # noqa: SIM115
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "run_worker", "--interval", "0.5"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    t0 = time.monotonic()
    workers = {w: start_worker(w, 1) for w in range(1, args.workers + 1)}
    events: list[str] = []
    outage_done = killed = armed = False
    stranded = 0
    in_flight_at_kill = ""
    last_progress = t0
    try:
        while True:
            got = recorder.count()
            if not outage_done and got >= 0.2 * n:
                server.stop()
                events.append(
                    f"{time.monotonic() - t0:6.1f} s  SMTP server stopped ({got} received)"
                )
                time.sleep(args.outage)
                server.start()
                events.append(f"{time.monotonic() - t0:6.1f} s  SMTP server restarted on its port")
                outage_done = True
            if outage_done and not killed:
                if args.kill_after_accept:
                    if got >= 0.5 * n and not armed:
                        recorder.kill_pid, armed = workers[1].pid, True
                    delivered = recorder.killed_after
                else:
                    delivered = recorder.mid_batch(1, batch=50) if got >= 0.5 * n else 0
                if delivered:
                    workers[1].send_signal(signal.SIGKILL)
                    workers[1].wait()
                    killed = True
                    events.append(
                        f"{time.monotonic() - t0:6.1f} s  worker 1 SIGKILLed mid-batch "
                        f"(its SMTP session had delivered {delivered} of its batch"
                        + (", the last not yet answered 250)" if args.kill_after_accept else ")")
                    )
                    stranded, in_flight_at_kill = kill_aftermath(recorder)
                    time.sleep(1.0)
                    workers[1] = start_worker(1, 2)
                    events.append(f"{time.monotonic() - t0:6.1f} s  worker 1 started again")
                    continue
                # Polled often, so the kill lands at no particular point of a send.
                time.sleep(0.002 if got >= 0.5 * n else 0.05)
                continue
            left = outbox_left()
            if time.monotonic() - last_progress >= 10:
                last_progress = time.monotonic()
                print(f"{last_progress - t0:6.1f} s  received {got}, outbox {left}", flush=True)
            if killed and not left.get("pending") and not left.get("sending"):
                break
            if time.monotonic() - t0 > args.timeout:
                print(f"Gave up after {args.timeout:.0f} s: {left}")
                break
            time.sleep(0.5 if killed else 0.05)
        total = time.monotonic() - t0
        time.sleep(1.0)  # a message in flight when the last row was marked
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in workers.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        server.stop()
    return report(recorder, pks, total, events, stranded, in_flight_at_kill, logs, args)


def kill_aftermath(recorder: Recorder) -> tuple[int, str]:
    """The killed worker's batch as it left it: its last received message's claim token
    names the batch; the rows of that claim still marked sending wait for the claim to
    lapse. Also whether that last message itself was recorded as sent (if not, the kill
    landed between the server's acceptance and the record: it will go twice)."""
    from clientarea.notifications.models import OutboxEmail

    with recorder.lock:
        last = next((mid for mid, worker, _ in reversed(recorder.received) if worker == 1), "")
    match = re.match(r"<outbox-(\d+)@", last)
    if not match:
        return 0, ""
    row = OutboxEmail.objects.get(pk=int(match.group(1)))
    stranded = OutboxEmail.objects.filter(
        claim_token=row.claim_token, status=OutboxEmail.Status.SENDING
    ).count()
    return stranded, f"{last}: {row.status} in the database"


def report(
    recorder: Recorder,
    pks: list[int],
    total: float,
    events: list[str],
    stranded: int,
    in_flight_at_kill: str,
    logs: Path,
    args: argparse.Namespace,
) -> int:
    from django.conf import settings

    from clientarea.notifications.models import OutboxEmail
    from clientarea.notifications.services import _message_for

    ids = Counter(mid for mid, _, _ in recorder.received)
    # Each email's Message-ID, as the worker makes it.
    queued = {
        _message_for(OutboxEmail(pk=pk, to_email="x@example.com"), None).extra_headers["Message-ID"]
        for pk in pks
    }
    lost = queued - set(ids)
    duplicated = {mid: c for mid, c in ids.items() if c > 1}
    in_doubt = sum(
        path.read_text(errors="replace").count(IN_DOUBT_LOG) for path in logs.glob("*.log")
    )
    # The outage is logged at ERROR once, by whichever worker found it (not per email).
    outage_logged = sum(
        path.read_text(errors="replace").count(OUTAGE_LOG) for path in logs.glob("*.log")
    )
    # An outage uses up no attempt of the emails waiting: 1 per email, 2 for one sent
    # again (in doubt) and for the one each worker was sending when the server went away.
    attempts = Counter(OutboxEmail.objects.values_list("attempts", flat=True))
    left = outbox_left()
    per_worker = Counter(worker for _, worker, _ in recorder.received)
    busy: dict[int, set[int]] = {}
    for _, worker, at in recorder.received:
        busy.setdefault(worker, set()).add(int(at))
    print()
    print(f"Outbox under failure: {len(pks)} emails, {args.workers} worker processes, PostgreSQL")
    print(
        f"  claim {settings.OUTBOX_CLAIM_SECONDS} s, "
        f"retry base {settings.OUTBOX_RETRY_BASE_SECONDS} s"
    )
    for line in events:
        print("  " + line)
    print(f"  killed worker's batch left claimed: {stranded} emails (taken over after the claim)")
    print(f"  its last message at the kill: {in_flight_at_kill}")
    print()
    print(f"  received            {len(recorder.received)}")
    print(f"  distinct Message-ID {len(ids)}")
    print(f"  lost                {len(lost)}")
    print(f"  duplicates          {sum(c - 1 for c in duplicated.values())} {sorted(duplicated)}")
    print(f"  in doubt (logged)   {in_doubt}")
    print(f"  outage logged       {outage_logged} (ERROR, all workers together)")
    print(f"  attempts per email  {dict(sorted(attempts.items()))}")
    print(f"  outbox at the end   {dict(sorted(left.items()))}")
    print(f"  total time          {total:.1f} s")
    print()
    print("  worker   received   mails/s over the run   mails/s while sending")
    for worker in sorted(per_worker):
        count, seconds = per_worker[worker], max(len(busy[worker]), 1)
        print(f"  {worker:>6}   {count:>8}   {count / total:>20.1f}   {count / seconds:>21.1f}")
    print(f"  {'all':>6}   {len(recorder.received):>8}   {len(recorder.received) / total:>20.1f}")
    print(f"  (worker logs: {logs})")
    failed = bool(lost) or sum(c - 1 for c in duplicated.values()) > in_doubt
    failed = failed or left.get("failed", 0) > 0 or set(ids) - queued != set()
    if failed:
        print("FAIL: lost emails, or a duplicate that no worker logged as in doubt")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
