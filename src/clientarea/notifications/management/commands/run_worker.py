import logging
import signal
import time
from collections.abc import Callable
from typing import Any

from django.contrib.sessions.backends.db import SessionStore
from django.core.management.base import BaseCommand

from clientarea.accounts.closing import closure_sweeps_run
from clientarea.accounts.ownership import ownership_transfer_expire_due
from clientarea.accounts.services import invitation_expire_due, membership_expire_due
from clientarea.core.outside import pending_changes_reconcile_due
from clientarea.core.registry import PERIODIC_JOBS
from clientarea.notifications.demo_mail import demo_mail_purge
from clientarea.notifications.services import outbox_deliver_due
from clientarea.security.throttle import throttle_prune

logger = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 60.0


class Command(BaseCommand):
    help = (
        "Background worker: delivers the email outbox (with retries), records expired "
        "access and invitations, settles changes left pending at outside systems, and "
        "prunes old throttling counters and sessions, until "
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
        last_housekeeping = float("-inf")
        while not stopping():
            if time.monotonic() - last_housekeeping >= HOUSEKEEPING_SECONDS:
                # Access already ends at its expiry (checked on every request); this
                # records it, voids other access and emails the person.
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
                # Changes an outside system may or may not have made (a crash or an
                # unanswered call): settled by asking that system.
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
                # Demo mail copies (live links): past their hours, or all once demo mode
                # is off.
                demo_mail_purge()
                # Old throttling counters and expired sessions would only pile up.
                throttle_prune()
                SessionStore.clear_expired()
                last_housekeeping = time.monotonic()
            stats = outbox_deliver_due()
            if any(stats.values()):
                self.stdout.write(
                    f"outbox: sent {stats['sent']}, failed {stats['failed']}, "
                    f"withheld {stats['withheld']}"
                )
            if once:
                break
            if not (stats["sent"] or stats["withheld"]):
                time.sleep(interval)
        self.stdout.write("Worker stopped.")
