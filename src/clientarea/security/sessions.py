"""Tracked sessions: each login gets a row (device, IP, last seen) that the user can end,
and that idle and absolute timeouts end (ASVS 7.3.1, 7.3.2, 7.4.x).

The session carries a random id; the row stores its SHA-256. ``AccessMiddleware`` calls
``session_check`` on every request: a session whose row is ended, idle for longer than
``SESSION_IDLE_TIMEOUT`` or older than ``SESSION_ABSOLUTE_LIFETIME`` is flushed, whatever
the session backend still holds.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.db.models import Q, Subquery
from django.http import HttpRequest
from django.utils import timezone

from clientarea.audit.services import audit_record, client_ip
from clientarea.core.retention import delete_in_batches

from .models import TrackedSession

SESSION_TRACKING_KEY = "security_sid"
TOUCH_EVERY_SECONDS = 60
Reason = TrackedSession.EndReason


def idle_timeout() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "SESSION_IDLE_TIMEOUT", 30 * 60)))


def absolute_lifetime() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "SESSION_ABSOLUTE_LIFETIME", 12 * 60 * 60)))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_start(*, request: HttpRequest, user: Any) -> TrackedSession:
    """Begin tracking the request's session for `user` (called at login)."""
    token = secrets.token_urlsafe(32)
    request.session[SESSION_TRACKING_KEY] = token
    row = TrackedSession.objects.create(
        user=user,
        digest=_digest(token),
        account_id=request.session.get("current_account_id"),
        ip_address=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:300],
    )
    request._tracked_session = row  # type: ignore[attr-defined]
    return row


def session_current(request: HttpRequest) -> TrackedSession | None:
    """The request's tracked session: the row `session_check` already loaded for this
    request, else read from the database."""
    cached: TrackedSession | None = getattr(request, "_tracked_session", None)
    if cached is not None:
        return cached
    digest = session_digest(request)
    return TrackedSession.objects.filter(digest=digest).first() if digest else None


# What `session_check` decides on, read with the request's access in its one query.
_STATE_COLUMNS = (
    "id",
    "user_id",
    "account_id",
    "created_at",
    "last_seen_at",
    "ended_at",
    "end_reason",
)


# The names under which `session_state_fields` are read.
SESSION_STATE_NAMES = tuple(f"session_{column}" for column in _STATE_COLUMNS)


def session_digest(request: HttpRequest) -> str:
    """The digest by which the request's tracked session is found; "" (no row has it)
    for a session that carries no tracking token."""
    token = request.session.get(SESSION_TRACKING_KEY) if hasattr(request, "session") else None
    return _digest(token) if isinstance(token, str) else ""


def session_state_fields(digest: str) -> dict[str, Subquery]:
    """The state of the tracked session with `digest` (``session_digest``) as expressions
    for the request's one access query (``policy.access_with``, from ``AccessMiddleware``):
    each a lookup of the session's row by its digest (a unique index), read fresh on every
    request, so a session ended from another device or by staff stops on its very next
    request, on every process. All None when there is no such row."""
    rows = TrackedSession.objects.filter(digest=digest)
    return {
        name: Subquery(rows.values(column)[:1])
        for name, column in zip(SESSION_STATE_NAMES, _STATE_COLUMNS, strict=True)
    }


def session_state_read(request: HttpRequest, values: dict[str, Any]) -> None:
    """Keep the state read by `session_state_fields` as the request's tracked session, so
    that `session_check` decides on it without reading the row again. The row's other
    fields (device, address) are loaded only if something asks for them. Without a row
    (a session from before tracking), `session_check` looks and starts tracking it."""
    if values.get("session_id") is None:
        return
    row = TrackedSession.from_db(
        TrackedSession.objects.db,
        list(_STATE_COLUMNS),
        [values[f"session_{column}"] for column in _STATE_COLUMNS],
    )
    request._tracked_session = row  # type: ignore[attr-defined]


def _kill(request: HttpRequest) -> None:
    request.session.flush()
    request.user = AnonymousUser()


def session_check(request: HttpRequest) -> str | None:
    """Validate the logged-in request's session; flush it and return why if it is over."""
    user: Any = request.user
    row = session_current(request)
    now = timezone.now()
    if row is None or row.user_id != user.pk:
        # A session from before tracking existed (or a tampered one): track it from now.
        session_start(request=request, user=user)
        return None
    if row.ended_at is not None:
        _kill(request)
        return row.end_reason or Reason.USER
    reason = None
    if now - row.last_seen_at > idle_timeout():
        reason = Reason.IDLE
    elif now - row.created_at > absolute_lifetime():
        reason = Reason.LIFETIME
    if reason is not None:
        _end_rows(TrackedSession.objects.filter(pk=row.pk), reason=reason, request=request)
        _kill(request)
        return reason
    if (now - row.last_seen_at).total_seconds() >= TOUCH_EVERY_SECONDS:
        # At most one write a minute per session, whatever the traffic.
        account_id = request.session.get("current_account_id")
        TrackedSession.objects.filter(pk=row.pk).update(
            last_seen_at=now, ip_address=client_ip(request), account_id=account_id
        )
        row.account_id = account_id
    request._tracked_session = row  # type: ignore[attr-defined]
    return None


def session_note_account(request: HttpRequest, account_id: int | None) -> None:
    """Remember which account the session works in (for Revoke Access); called when the
    session's account changes."""
    row: TrackedSession | None = getattr(request, "_tracked_session", None)
    if row is not None and row.account_id != account_id:
        TrackedSession.objects.filter(pk=row.pk).update(account_id=account_id)
        row.account_id = account_id


def _end_rows(
    rows: Any,
    *,
    reason: str,
    actor: Any = None,
    request: HttpRequest | None = None,
    account: Any = None,
) -> int:
    """End the given active sessions and audit each end. Returns how many ended."""
    with transaction.atomic():
        ended = list(rows.active().select_related("user").select_for_update())
        if not ended:
            return 0
        TrackedSession.objects.filter(pk__in=[s.pk for s in ended]).update(
            ended_at=timezone.now(), end_reason=reason
        )
        for s in ended:
            audit_record(
                action="session.ended",
                actor=actor,
                account=account,
                target=s.user,
                target_label=f"{s.user.email}: {s.device}",
                changes={"reason": reason, "session": s.pk},
                request=request,
            )
    return len(ended)


def session_end(
    *, session: TrackedSession, reason: str, actor: Any = None, request: HttpRequest | None = None
) -> int:
    return _end_rows(
        TrackedSession.objects.filter(pk=session.pk), reason=reason, actor=actor, request=request
    )


def session_end_others(
    *, user: Any, reason: str, request: HttpRequest | None = None, actor: Any = None
) -> int:
    """End every session of `user` except the request's own (if it is theirs)."""
    rows = TrackedSession.objects.filter(user=user)
    current = session_current(request) if request is not None else None
    if current is not None:
        rows = rows.exclude(pk=current.pk)
    return _end_rows(rows, reason=reason, actor=actor or user, request=request)


def session_end_for_membership(
    *, membership: Any, actor: Any = None, request: HttpRequest | None = None
) -> int:
    """Revoke Access: end the revoked user's sessions *on that account*.

    ``AccessMiddleware`` re-reads the membership on every request, so the account is
    dropped from each of those sessions on its very next request (the user sees "access
    removed" and keeps any other accounts they belong to). Here each such session is
    detached from the account and the end is audited, so the Security page and the
    trail show it. Returns how many sessions were working in the account."""
    rows = list(
        TrackedSession.objects.active()
        .filter(user_id=membership.user_id, account_id=membership.account_id)
        .select_related("user")
    )
    if not rows:
        return 0
    TrackedSession.objects.filter(pk__in=[r.pk for r in rows]).update(account_id=None)
    for s in rows:
        audit_record(
            action="session.account_access_ended",
            actor=actor,
            account=membership.account,
            target=s.user,
            target_label=f"{s.user.email}: {s.device}",
            changes={"reason": Reason.REVOKED, "session": s.pk},
            request=request,
        )
    return len(rows)


def session_retention() -> timedelta:
    """How long a session's row is kept after it ended or was last used: the configured
    days, but never less than a day past the longest a session cookie can still be
    valid. A row deleted while its session could still be presented would make
    ``session_check`` track that session afresh, reviving an ended one."""
    days = timedelta(days=int(getattr(settings, "RETENTION_SESSION_DAYS", 90)))
    cookie_age = timedelta(seconds=int(settings.SESSION_COOKIE_AGE))
    return max(days, cookie_age + absolute_lifetime() + timedelta(days=1))


def sessions_prune(*, now: datetime | None = None) -> int:
    """Retention (the worker's housekeeping): delete the rows of sessions that ended, or
    were last used, longer ago than ``session_retention()``. The Security page lists only
    active sessions; the audit trail keeps every session.ended event."""
    cutoff = (now or timezone.now()) - session_retention()
    old = TrackedSession.objects.filter(
        Q(ended_at__lt=cutoff) | Q(ended_at__isnull=True, last_seen_at__lt=cutoff)
    )
    return delete_in_batches(old)


def session_list_for(user: Any) -> Any:
    return TrackedSession.objects.filter(user=user).active().order_by("-last_seen_at", "-pk")
