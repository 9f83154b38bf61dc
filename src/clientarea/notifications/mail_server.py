"""Whether the mail server is reachable, shared by every worker process.

An outage of the mail server is no fault of the emails waiting for it: it must delay them,
never use up their attempts (OUTBOX_MAX_ATTEMPTS would otherwise turn every queued email
into "failed" after about an hour down). So a failure that is the server's (opening a
connection fails: connect, TLS, greeting, EHLO, login; see ``outbox_deliver_due`` for why
nothing later is) leaves the emails pending as they were, and backs off here, once for
all workers:

- One row (``MailServerState``, pk 1) says since when the server has been unreachable and
  until when nobody connects (``retry_at``). Every worker reads it at the start of its turn
  (one query by primary key) and does not connect before ``retry_at``: three workers do
  not each hammer a server that is down. The database is what the workers already share;
  a per-process back-off would multiply the tries by the number of workers, and each
  worker would still log its own outage.
- Once ``retry_at`` has passed, one worker takes the probe with a conditional UPDATE (it
  pushes ``retry_at`` on by the next back-off, so a probe whose worker dies just costs one
  more back-off) and connects; the others keep waiting. Success clears the row; failure
  doubles the back-off, up to OUTBOX_SERVER_RETRY_MAX_SECONDS.
- The first failure of an outage is logged at ERROR, once (not once per email, not once
  per worker); the outage's end at WARNING. The back office's outbox list shows it.

Never called inside a transaction that spans network I/O: the connection is tried first,
its outcome recorded after.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import MailServerState

logger = logging.getLogger(__name__)

ROW = 1


def server_retry_delay(failures: int) -> timedelta:
    """How long every worker waits after the `failures`-th failed try of an outage:
    OUTBOX_RETRY_BASE_SECONDS doubled each time, capped at OUTBOX_SERVER_RETRY_MAX_SECONDS
    (a server that comes back is used within that long)."""
    seconds = settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** min(max(failures - 1, 0), 30)
    return timedelta(seconds=min(seconds, settings.OUTBOX_SERVER_RETRY_MAX_SECONDS))


@dataclass(frozen=True)
class Gate:
    """May this worker connect now, and is its connection the probe of an outage?"""

    open: bool
    probing: bool = False
    state: MailServerState | None = None


def mail_server_gate(now: datetime) -> Gate:
    """At the start of a worker's turn: one read, plus one conditional UPDATE when an
    outage's back-off has just passed (whoever's UPDATE matches probes; the others wait)."""
    state = MailServerState.objects.filter(pk=ROW).first()
    if state is None or state.unreachable_since is None:
        return Gate(open=True)
    if state.retry_at is not None and state.retry_at > now:
        return Gate(open=False, state=state)
    took = (
        MailServerState.objects.filter(
            pk=ROW, failures=state.failures, unreachable_since__isnull=False
        )
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .update(retry_at=now + server_retry_delay(state.failures + 1))
    )
    return Gate(open=bool(took), probing=bool(took), state=state)


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def mail_server_failed(exc: BaseException, *, now: datetime, probing: bool) -> None:
    """Record a failure that is the server's, and back off (for every worker)."""
    at = max(now, timezone.now())
    MailServerState.objects.bulk_create([MailServerState(pk=ROW)], ignore_conflicts=True)
    with transaction.atomic():
        state = MailServerState.objects.select_for_update().get(pk=ROW)
        if (
            not probing
            and state.unreachable_since is not None
            and state.retry_at is not None
            and state.retry_at > at
        ):
            # Another worker, connecting at the same moment, has recorded this failure.
            return
        first = state.unreachable_since is None
        state.failures += 1
        state.unreachable_since = state.unreachable_since or at
        state.retry_at = at + server_retry_delay(state.failures)
        state.last_error = describe(exc)
        state.save()
    if first:
        logger.error(
            "The mail server is unreachable (%s): email waits in the outbox, its attempts "
            "unchanged; the workers try again from %s, backing off up to %s s.",
            state.last_error,
            state.retry_at.isoformat(),
            settings.OUTBOX_SERVER_RETRY_MAX_SECONDS,
        )
    else:
        logger.info(
            "The mail server is still unreachable (%s), since %s (%s tries); next try %s.",
            state.last_error,
            state.unreachable_since.isoformat(),
            state.failures,
            state.retry_at.isoformat(),
        )


def mail_server_reached(state: MailServerState | None) -> None:
    """The probe connected: the outage is over, every worker sends again."""
    if state is None or state.unreachable_since is None:
        return
    ended = MailServerState.objects.filter(pk=ROW, unreachable_since__isnull=False).update(
        unreachable_since=None, retry_at=None, failures=0, last_error=""
    )
    if ended:
        logger.warning(
            "The mail server is reachable again (unreachable since %s, %s failed tries).",
            state.unreachable_since.isoformat(),
            state.failures,
        )


def mail_server_outage() -> MailServerState | None:
    """For staff: the current outage (since when, the last error, the next try), if any."""
    return MailServerState.objects.filter(pk=ROW, unreachable_since__isnull=False).first()
