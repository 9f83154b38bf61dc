"""Calls to outside systems (control panel, registrar, card processor): errors, retries and
the "record the intent, call outside, record the result" rule.

No outside call runs inside a database transaction or while a row lock is held: a slow
panel would otherwise hold locks for seconds, and a crash after the panel changed but
before our commit would leave us claiming the old state. So every change that an outside
system carries out goes through three steps:

1. ``pending_change_begin`` commits the intent: a ``PendingChange`` row with its own
   idempotency key (at most one pending change per object, enforced by the database);
2. the caller calls the outside system, with no transaction open (``outside_call``
   retries what is safe to retry, with backoff, within a bounded time);
3. the caller records the result in a second transaction and finishes the change
   (``pending_change_finish``).

A crash or an unanswered call between 1 and 3 leaves the change pending: the customer
sees "pending", never a change that did not happen, and the worker's
``pending_changes_reconcile_due`` asks the outside system what it holds (through the
reconciler the owning app registered for that operation) and finishes or fails it.

Drivers raise the three errors below, so every caller tells the customer the truth:
``OutsideRefused`` (the system answered no: nothing changed), ``OutsideUnavailable``
(it could not be reached before anything was sent: nothing changed) and
``OutsideUncertain`` (the request may have arrived but no answer came: pending).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, TypeVar

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
)

if TYPE_CHECKING:
    from clientarea.accounts.models import Account, User

    from .models import PendingChange

logger = logging.getLogger(__name__)

T = TypeVar("T")


class OutsideError(Exception):
    """An outside system did not do what was asked; ``str(exc)`` is for the customer."""


class OutsideRefused(OutsideError):
    """The outside system answered and refused: nothing was changed there."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code  # the system's own code (EPP result code, WHM reason...), if any


class OutsideUnavailable(OutsideError):
    """The outside system could not be reached before anything was sent (connection
    refused, TLS failure, bad credentials at login): nothing was changed there."""


class OutsideUncertain(OutsideError):
    """The request may have reached the outside system, but no answer came (timeout after
    sending, dropped connection): whether it changed anything is unknown."""


class OutsideChangeInFlight(Exception):
    """Another change to the same object is still pending; the message is for the user."""


@dataclass
class _CallFrame:
    """One outside_call in progress on this thread (or task)."""

    deadline: float
    inner_ran: bool = False


_current_call: ContextVar[_CallFrame | None] = ContextVar("outside_call", default=None)


def outside_call(
    call: Callable[[], T], *, retry_uncertain: bool = False, attempts: int | None = None
) -> T:
    """Run `call` (one request to an outside system), retrying with exponential backoff
    when nothing can have happened yet (``OutsideUnavailable``), and also after an
    uncertain answer when the operation is idempotent (`retry_uncertain`). The whole
    retry budget is bounded by OUTSIDE_CALL_BUDGET_SECONDS, so a page never hangs.

    Once an attempt went unanswered, a later refusal or failure does not mean nothing
    changed (the unanswered attempt may have been applied, and the retry refused because
    of it): the call then ends uncertain, and the pending change is settled by asking.

    Calls nest: a service wraps a driver method, and a real driver (WHM, EPP) wraps each
    request with its own policy (it knows which of its requests may be repeated). The
    innermost policy wins: an outer call whose `call` made an inner one is not retried,
    and the inner one keeps to what is left of the outer budget. A driver without its
    own policy (the local stand-ins) gets the outer one."""
    retry_on: tuple[type[BaseException], ...] = (
        (OutsideUnavailable, OutsideUncertain) if retry_uncertain else (OutsideUnavailable,)
    )
    unanswered: list[OutsideUncertain] = []
    outer = _current_call.get()
    if outer is not None:
        outer.inner_ran = True
    now = time.monotonic()
    budget = settings.OUTSIDE_CALL_BUDGET_SECONDS
    frame = _CallFrame(deadline=min(now + budget, outer.deadline if outer else now + budget))

    def attempt() -> T:
        token = _current_call.set(frame)
        try:
            return call()
        except OutsideUncertain as exc:
            unanswered.append(exc)
            raise
        finally:
            _current_call.reset(token)

    def worth_retrying(exc: BaseException) -> bool:
        return isinstance(exc, retry_on) and not frame.inner_ran

    retrying = Retrying(
        retry=retry_if_exception(worth_retrying),
        stop=stop_after_attempt(attempts or settings.OUTSIDE_CALL_ATTEMPTS)
        | stop_after_delay(max(0.0, frame.deadline - now)),
        wait=wait_exponential(multiplier=settings.OUTSIDE_CALL_BACKOFF_SECONDS, max=5),
        reraise=True,
    )
    assert_no_transaction()
    try:
        return retrying(attempt)
    except OutsideError as exc:
        if unanswered and not isinstance(exc, OutsideUncertain):
            raise unanswered[-1] from exc
        raise


def in_transaction() -> bool:
    """Whether a transaction of ours is open on the default connection. The atomic blocks
    a test case wraps every test in do not count, so the rule holds in every test too."""
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def assert_no_transaction() -> None:
    """Outside calls are made with no transaction open, hence no row lock held."""
    if in_transaction():
        raise RuntimeError("An outside system must not be called inside a database transaction.")


# --- pending changes ---------------------------------------------------------------------


class Reconciled(StrEnum):
    DONE = "done"  # the outside system holds the change: recorded as made
    FAILED = "failed"  # it does not: recorded as not made
    PENDING = "pending"  # still unknown (the system did not answer): asked again later


@dataclass(frozen=True)
class Reconciler:
    """How an app settles its pending changes of one operation: `settle` asks the outside
    system (no transaction open) and records the result itself, returning what it found."""

    operation: str
    settle: Callable[[PendingChange], Reconciled]


RECONCILERS: dict[str, Reconciler] = {}


def register_reconciler(operation: str, settle: Callable[[PendingChange], Reconciled]) -> None:
    RECONCILERS[operation] = Reconciler(operation, settle)


def pending_change_begin(
    *,
    operation: str,
    target: str,
    account: Account,
    actor: User | None,
    params: dict[str, object],
    secret: str = "",
) -> PendingChange:
    """Record the intent of a change to `target` (e.g. "domains.domain:12"), usually in
    the transaction that checked the change is allowed; it must be committed before the
    outside call. Raises OutsideChangeInFlight if a change to it is already pending."""
    from . import crypto
    from .models import PendingChange

    grace = timedelta(seconds=settings.PENDING_CHANGE_GRACE_SECONDS)
    try:
        with transaction.atomic():
            return PendingChange.objects.create(
                operation=operation,
                target=target,
                account=account,
                actor=actor,
                params=params,
                secret_ciphertext=crypto.encrypt(secret) if secret else "",
                next_check_at=timezone.now() + grace,
            )
    except IntegrityError:
        raise OutsideChangeInFlight(
            "An earlier change to this is still pending: wait for it to finish, then try again."
        ) from None


def pending_change_finish(change: PendingChange, *, done: bool, message: str = "") -> bool:
    """Record the result of `change` inside the caller's transaction. Returns True if
    this call recorded it; False if it was recorded already, and the caller then records
    nothing, so a change is applied exactly once.

    The outside system's "yes" wins over our "not made": a change the worker recorded
    as not made (asked while the request was still talking to the system, or given up)
    that the system then confirms is recorded as made, unless a newer change to the
    same object was asked since (its result is what the customer is waiting for)."""
    from .models import PendingChange

    states = [PendingChange.State.PENDING]
    if done:
        newer = PendingChange.objects.filter(
            target=change.target, created_at__gt=change.created_at
        ).exclude(pk=change.pk)
        if not newer.exists():
            states.append(PendingChange.State.FAILED)
    finished = PendingChange.objects.filter(pk=change.pk, state__in=states).update(
        state=PendingChange.State.DONE if done else PendingChange.State.FAILED,
        message="" if done else message[:300],
        secret_ciphertext="",
        finished_at=timezone.now(),
    )
    return bool(finished)


def time_left() -> float:
    """Seconds left of the current outside call's budget (the whole budget outside one):
    a driver cuts each socket wait to it, so a call never outlives its budget and the
    worker never settles a change whose request is still talking to the system."""
    frame = _current_call.get()
    if frame is None:
        return float(settings.OUTSIDE_CALL_BUDGET_SECONDS)
    return max(0.0, frame.deadline - time.monotonic())


def pending_change_fail(change: PendingChange, message: str) -> None:
    """Record, in its own transaction, that `change` was not made, and why."""
    with transaction.atomic():
        pending_change_finish(change, done=False, message=message)


@dataclass(frozen=True)
class ChangeOutcome:
    """What became of a change handed to an outside system: made, or pending (no answer
    yet: the page says so, and the worker settles it)."""

    pending: bool


def last_failed_change(target: str, operations: tuple[str, ...] = ()) -> PendingChange | None:
    """The newest finished change of `target` (of these operations, if given), if it
    ended without being made: what a page says went wrong, until a later change is made."""
    from .models import PendingChange

    changes = PendingChange.objects.filter(target=target)
    if operations:
        changes = changes.filter(operation__in=operations)
    latest = (
        changes.exclude(state=PendingChange.State.PENDING).order_by("-created_at", "-id").first()
    )
    return latest if latest is not None and latest.state == PendingChange.State.FAILED else None


def pending_change_secret(change: PendingChange) -> str:
    from . import crypto

    return crypto.decrypt(change.secret_ciphertext) if change.secret_ciphertext else ""


def pending_for(target: str) -> PendingChange | None:
    from .models import PendingChange

    return PendingChange.objects.filter(target=target, state=PendingChange.State.PENDING).first()


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(60 * 2**attempts, 3600))


GIVE_UP_MESSAGE = (
    "the outside system never answered, so it was abandoned; please check and make the "
    "change again."
)


def unconfirmed(change: PendingChange | None) -> bool:
    """Whether a change recorded as not made was in fact abandoned unanswered (it may or
    may not have been made: the page must not say "not made")."""
    return change is not None and change.message == GIVE_UP_MESSAGE


def pending_changes_reconcile_due(
    *, now: object = None, limit: int = 50, max_seconds: float | None = None
) -> dict[str, int]:
    """Settle the pending changes whose grace period has passed (the request that made
    them has finished or died). Each is claimed first by moving its next check forward,
    so two workers never settle the same change at once; then its app's reconciler asks
    the outside system, with no transaction open. One pass takes at most `max_seconds`
    (one outside-call budget by default), so a silent panel or registry never holds up the
    worker's other work (the email outbox) for long: what is left waits for the next."""
    from .models import PendingChange

    now_ = now or timezone.now()
    stop_at = time.monotonic() + (
        settings.OUTSIDE_CALL_BUDGET_SECONDS if max_seconds is None else max_seconds
    )
    stats = {state.value: 0 for state in Reconciled}
    due = list(
        PendingChange.objects.filter(state=PendingChange.State.PENDING, next_check_at__lte=now_)
        .order_by("next_check_at")
        .values_list("pk", "attempts")[:limit]
    )
    for pk, attempts in due:
        if time.monotonic() >= stop_at:
            break
        lease = timezone.now() + _backoff(attempts)
        claimed = PendingChange.objects.filter(
            pk=pk, state=PendingChange.State.PENDING, attempts=attempts
        ).update(attempts=attempts + 1, next_check_at=lease)
        if not claimed:
            continue  # another worker took it
        change = PendingChange.objects.select_related("account", "actor").get(pk=pk)
        reconciler = RECONCILERS.get(change.operation)
        give_up_at = change.created_at + timedelta(hours=settings.PENDING_CHANGE_GIVE_UP_HOURS)
        if reconciler is None:  # a bug: still given up in the end, never pending forever
            logger.error("No reconciler for pending change %s (%s)", pk, change.operation)
            result = Reconciled.PENDING
        else:
            try:
                result = reconciler.settle(change)
            except Exception:  # a reconciler bug must not stop the worker: retried later
                logger.exception("Reconciling pending change %s failed", pk)
                result = Reconciled.PENDING
        if result is Reconciled.PENDING and timezone.now() >= give_up_at:
            with transaction.atomic():
                pending_change_finish(change, done=False, message=GIVE_UP_MESSAGE)
            result = Reconciled.FAILED
        stats[result.value] += 1
    return stats
