from __future__ import annotations

from typing import Any

from django.db import models
from django.http import HttpRequest

from .models import AuditEvent


def client_ip(request: HttpRequest | None) -> str | None:
    """The client's address as seen by Django (a proxy must set REMOTE_ADDR correctly)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    action: str,
    actor: Any = None,
    account: Any = None,
    target: models.Model | None = None,
    target_label: str = "",
    changes: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    ip_address: str | None = None,
    is_staff_action: bool = False,
) -> AuditEvent:
    """Append one audit event. Call it inside the transaction of the action it records."""
    actor_label = ""
    if actor is not None and getattr(actor, "is_authenticated", False):
        actor_label = f"{actor.get_full_name()} <{actor.email}>"
    else:
        actor = None
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_label=actor_label or ("staff" if is_staff_action else "system"),
        account=account,
        target_type=(target._meta.model_name or "") if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label or (str(target) if target is not None else ""))[:300],
        changes=changes or {},
        ip_address=ip_address or client_ip(request),
        is_staff_action=is_staff_action,
    )
