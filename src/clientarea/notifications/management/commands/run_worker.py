import logging
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.sessions.backends.db import SessionStore
from django.core.management.base import BaseCommand
from django.db import DatabaseError, close_old_connections

from clientarea.accounts.closing import closure_sweeps_run
from clientarea.accounts.ownership import ownership_transfer_expire_due
from clientarea.accounts.services import invitation_expire_due, membership_expire_due
from clientarea.core.outside import pending_changes_reconcile_due
from clientarea.core.periodic import periodic_turn
from clientarea.core.registry import PERIODIC_JOBS, RETENTION_JOBS
from clientarea.core.retention import database_cache_prune
from clientarea.notifications.demo_mail import demo_mail_purge
from clientarea.notifications.services import outbox_bodies_prune, outbox_deliver_due
from clientarea.security.sessions import sessions_prune
from clientarea.security.throttle import throttle_prune

logger = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 60.0
# How often each worker asks whether it is its turn (a cheap UPDATE, or a lock attempt
# on PostgreSQL): a worker that just started, or outlived the one that ran it last, takes
# the turn within this long of it falling due.
HOUSEKEEPING_ASK_SECONDS = 10.0
HOUSEKEEPING_TURN = "worker.housekeeping"
RETENTION_SECONDS = 3600.0
RETENTION_TURN = "worker.retention"


class Command(BaseCommand):
    help = (
        "Background worker: delivers the email outbox (with retries), records expired "
        "access and invitations, settles changes left pending at outside systems, and "
        "removes data past its retention (once per interval across all workers), until "
        "stopped."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Deliver what is due and exit.")
        parser.add_argument("--interval", type=float, default=2.0)

    def handle(self, *args: Any, once: bool = False, interval: float = 2.0, **options: Any) -> None:
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._loop(once, interval, lambda: stopping)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _loop(self, once: bool, interval: float, stopping: Callable[[], bool]) -> None:
        self.stdout.write("Worker started: delivering the email outbox.")
        last_asked = float("-inf")
        while not stopping():
            try:
                # Every worker delivers email; the housekeeping runs once per interval
                # across all of them (core.periodic): each asks for the turn now and then,
                # and the one that gets it runs it while the others go on delivering.
                if time.monotonic() - last_asked >= HOUSEKEEPING_ASK_SECONDS:
                    last_asked = time.monotonic()
                    with periodic_turn(
                        HOUSEKEEPING_TURN, every=timedelta(seconds=HOUSEKEEPING_SECONDS)
                    ) as mine:
                        if mine:
                            self._housekeeping()
                stats = outbox_deliver_due()
            except DatabaseError:
                # The database went away (a restart, a failover): what this worker had
                # claimed waits for its claim to lapse (an email the server accepted
                # meanwhile is in doubt and goes again, with the same Message-ID). The
                # worker goes on once the database is back rather than exiting.
                logger.exception("Worker turn stopped by a database error")
                if once:
                    raise
                close_old_connections()
                time.sleep(interval)
                continue
            if any(stats.values()):
                self.stdout.write(
                    f"outbox: sent {stats['sent']}, failed {stats['failed']}, "
                    f"withheld {stats['withheld']}"
                )
            if once:
                break
            # Between turns, as a request's end does for the web processes (a worker gets
            # no request cycle): drop a connection that broke (a database restart, a
            # pooler closing it) or outlived CONN_MAX_AGE, so the next turn reconnects.
            close_old_connections()
            if not (stats["sent"] or stats["withheld"]):
                time.sleep(interval)
        self.stdout.write("Worker stopped.")

    def _housekeeping(self) -> None:
        # Access already ends at its expiry (checked on every request); this records it,
        # voids other access and emails the person.
        expired = membership_expire_due()
        lapsed = invitation_expire_due()
        if expired or lapsed:
            self.stdout.write(f"expired: {expired} access, {lapsed} invitations")
        # Transfer offers past their 72 hours: recorded and both people told.
        offers = ownership_transfer_expire_due()
        # What closed accounts still hold, wound down (services at period end).
        wound_down = closure_sweeps_run()
        if offers or wound_down:
            self.stdout.write(
                f"expired: {offers} transfer offers; closed accounts: {wound_down} items"
            )
        # Changes an outside system may or may not have made (a crash or an unanswered
        # call): settled by asking that system.
        settled = pending_changes_reconcile_due()
        if settled["done"] or settled["failed"]:
            self.stdout.write(
                f"pending changes: {settled['done']} done, {settled['failed']} failed"
            )
        # The domain apps' own jobs (e.g. payments left processing).
        for name, job in PERIODIC_JOBS.items():
            try:
                summary = job()
            except Exception:  # one failing job must not stop the worker
                logger.exception("Periodic job %s failed", name)
                continue
            if summary:
                self.stdout.write(f"{name}: {summary}")
        # Demo mail copies (live links): past their hours, or all once demo mode is off.
        demo_mail_purge()
        # Data retention (settings RETENTION_*): old throttling counters, tracked and
        # Django sessions, and the text of emails delivered long ago. Audit events stay.
        # Hourly, in a turn of its own: its ages are days, and each job reads a large table.
        with periodic_turn(RETENTION_TURN, every=timedelta(seconds=RETENTION_SECONDS)) as mine:
            if mine:
                self._retention()

    def _retention(self) -> None:
        pruned = {
            "throttle counters": throttle_prune(),
            "tracked sessions": sessions_prune(),
            "email texts": outbox_bodies_prune(),
            "expired cache entries": database_cache_prune(),
        }
        # The domain apps' own (e.g. billing's Idempotency-Key records).
        for name, job in RETENTION_JOBS.items():
            try:
                pruned[name] = job()
            except Exception:  # one failing job must not stop the others
                logger.exception("Retention job %s failed", name)
        SessionStore.clear_expired()
        if any(pruned.values()):
            self.stdout.write(
                "retention: removed "
                + ", ".join(f"{count} {what}" for what, count in pruned.items() if count)
            )
