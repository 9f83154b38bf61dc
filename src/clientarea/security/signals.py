"""Login, logout and failed-login hooks: session tracking and the audit trail
(ASVS 16.3.1)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from clientarea.accounts.models import User
from clientarea.audit.services import audit_record

from .models import TrackedSession
from .sessions import session_current, session_end, session_end_for_membership, session_start


@receiver(user_logged_in)
def _on_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or not hasattr(request, "session"):
        return
    session_start(request=request, user=user)
    audit_record(action="user.logged_in", actor=user, target=user, request=request)


@receiver(user_logged_out)
def _on_logout(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None or user is None:
        return
    current = session_current(request)
    if current is not None and current.user_id == user.pk:
        session_end(
            session=current, reason=TrackedSession.EndReason.LOGOUT, actor=user, request=request
        )


@receiver(user_login_failed)
def _on_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    # Only a known login is named: whatever an attacker typed (perhaps a password in
    # the email field) never reaches the audit trail.
    username = str(credentials.get("username") or credentials.get("email") or "")
    known = User.objects.filter(email__iexact=username.strip()).first() if username else None
    audit_record(
        action="user.login_failed",
        target=known,
        target_label=known.email if known else "unknown login",
        request=request,
    )


def _on_access_ended(sender: Any, membership: Any, reason: str = "", **kwargs: Any) -> None:
    """Revoke Access (or expiry) ends the user's sessions working in that account."""
    session_end_for_membership(membership=membership)


try:  # the hook of identity and access, sent inside the revoking transaction
    from clientarea.accounts.signals import access_ended
except ImportError:  # pragma: no cover - a tree without the signal
    pass
else:
    access_ended.connect(_on_access_ended, dispatch_uid="security.access_ended")
