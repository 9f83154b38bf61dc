"""A small database-backed limiter: failures per (scope, key) with a cool-off.

Used for logins and two-factor codes (see ``login_throttle`` for how their scopes
combine), password-reset requests and links, the confirm-your-password page, invitation
links and the owner's invitation sending. The counters live in the database, so every app
process behind a load balancer sees the same numbers.

Rule for a scope with ``(limit, period)``: the ``limit``-th failure within ``period``
seconds blocks the key for ``period`` seconds. Attempts while blocked are refused without
being counted, so the block always ends: nobody can lock anyone out for good, only slow
them down (ASVS 6.1.1, 6.3.1). Keys are stored as keyed hashes (HMAC with SECRET_KEY),
never in clear, so the table holds no email addresses, IPs or device nonces; stale rows
are deleted by the worker's housekeeping (``throttle_prune``).

Login scopes (OWASP "device cookies"; a stranger must not be able to lock a person out):

- ``login-pair``: failures per (email, client address) from browsers without a device
  cookie for that email: the tight limit.
- ``login-ip``: failures per client address, any email (credential stuffing), same
  browsers.
- ``login-email``: failures per email from browsers without its device cookie: a far
  higher ceiling; when reached, only such browsers are refused for that email and the
  person is told once. A browser the person has logged in from is never refused by it.
- ``login-device``: failures per device cookie (its nonce); a device that keeps failing
  is refused, even if its cookie is replayed elsewhere, until the cool-off ends.
- ``otp-user`` / ``otp-ip`` / ``otp-device``: the same for the two-factor code step (the
  password is already known there): per user and per address for unknown browsers, per
  device cookie for known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from clientarea.core.retention import delete_in_batches

from .models import ThrottleBucket

DEFAULT_LIMITS: dict[str, tuple[int, int]] = {
    "login-pair": (5, 15 * 60),
    "login-ip": (30, 15 * 60),
    "login-email": (50, 60 * 60),
    "login-device": (5, 15 * 60),
    "otp-user": (5, 15 * 60),
    "otp-ip": (30, 15 * 60),
    "otp-device": (5, 15 * 60),
    "confirm-user": (5, 15 * 60),
    "reset-email": (3, 60 * 60),
    "reset-ip": (20, 60 * 60),
    "token-ip": (20, 60 * 60),
    "invite-send": (20, 60 * 60),
    # Contact confirmation emails: per account, and per address whatever the account
    # (nobody can make the provider mail an address over and over).
    "contact-confirm-account": (20, 60 * 60),
    "contact-confirm-address": (3, 60 * 60),
}

THROTTLED_MESSAGE = "Too many attempts. Please wait a few minutes and try again."


class Throttled(Exception):
    """Raised by services that refuse an action because its limit is reached."""

    def __init__(self, message: str = THROTTLED_MESSAGE) -> None:
        super().__init__(message)
        self.message = message


def limits(scope: str) -> tuple[int, int]:
    configured: dict[str, tuple[int, int]] = getattr(settings, "SECURITY_THROTTLES", {})
    return configured.get(scope) or DEFAULT_LIMITS[scope]


def _digest(scope: str, key: str) -> str:
    return salted_hmac("clientarea.security.throttle", f"{scope}:{key}").hexdigest()


def throttle_blocked(*, scope: str, key: str | int | None) -> bool:
    """Is this key in its cool-off right now? (A missing key is never blocked.)"""
    return throttle_any_blocked([(scope, key)])


def throttle_any_blocked(keys: Iterable[tuple[str, str | int | None]]) -> bool:
    """Is any of these (scope, key) pairs in its cool-off? One query, whatever the number."""
    condition = Q()
    for scope, key in keys:
        if key is not None and key != "":
            condition |= Q(scope=scope, key_digest=_digest(scope, str(key)))
    if not condition:
        return False
    return ThrottleBucket.objects.filter(condition, blocked_until__gt=timezone.now()).exists()


def throttle_fail(
    *, scope: str, key: str | int | None, on_block: Callable[[], object] | None = None
) -> bool:
    """Count one failure; returns True when the key is (now) blocked. ``on_block`` runs
    once per cool-off, inside the transaction of the failure that started it (to queue a
    notice: exactly one per lockout, even under concurrent failures)."""
    if key is None or key == "":
        return False
    limit, period = limits(scope)
    digest = _digest(scope, str(key))
    with transaction.atomic():
        ThrottleBucket.objects.get_or_create(scope=scope, key_digest=digest)
        bucket = ThrottleBucket.objects.select_for_update().get(scope=scope, key_digest=digest)
        now = timezone.now()
        if bucket.blocked_until is not None and bucket.blocked_until > now:
            return True  # not counted: the cool-off is never extended
        window_over = now - bucket.window_started_at > timedelta(seconds=period)
        if bucket.blocked_until is not None or window_over:
            bucket.failures, bucket.window_started_at, bucket.blocked_until = 0, now, None
        bucket.failures += 1
        if bucket.failures >= limit:
            bucket.blocked_until = now + timedelta(seconds=period)
        bucket.save()
        if bucket.blocked_until is not None and on_block is not None:
            on_block()
        return bucket.blocked_until is not None


def throttle_consume(*, scope: str, key: str | int | None) -> bool:
    """For actions limited by count, not failure (invitations sent, reset emails):
    returns False when the limit is already reached, else counts this one."""
    if throttle_blocked(scope=scope, key=key):
        return False
    throttle_fail(scope=scope, key=key)
    return True


def throttle_clear(*, scope: str, key: str | int | None) -> None:
    if key is None or key == "":
        return
    ThrottleBucket.objects.filter(scope=scope, key_digest=_digest(scope, str(key))).delete()


def throttle_prune(*, now: datetime | None = None) -> int:
    """Delete buckets that no longer matter: not blocked, and whose counting window
    (the longest any scope uses) is over. Run by the worker's housekeeping so the table
    holds only recent keys."""
    now = now or timezone.now()
    configured: dict[str, tuple[int, int]] = getattr(settings, "SECURITY_THROTTLES", {})
    longest = max(limits(scope)[1] for scope in {*DEFAULT_LIMITS, *configured})
    # RETENTION_THROTTLE_HOURS keeps counters a while past their window (0: not at all).
    keep = timedelta(seconds=longest, hours=int(getattr(settings, "RETENTION_THROTTLE_HOURS", 0)))
    stale = ThrottleBucket.objects.filter(window_started_at__lt=now - keep).exclude(
        blocked_until__gt=now
    )
    return delete_in_batches(stale)
