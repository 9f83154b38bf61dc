"""The owner's activity log: the account's audit events, filterable by user."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from clientarea.accounts import permissions
from clientarea.accounts.policy import AccountRequest, owner_only
from clientarea.accounts.selectors import account_people
from clientarea.core import timefmt

from .labels import action_label
from .models import AuditEvent

PAGE_SIZE = 50


LIST_FIELDS = {"permissions", "email_kinds"}


def _is_change(key: str, value: Any) -> bool:
    """[before, after] pairs; a field that is itself a list only when a side is a list."""
    if not isinstance(value, list) or len(value) != 2:
        return False
    return key not in LIST_FIELDS or any(isinstance(v, list) for v in value)


def _describe(changes: Any) -> list[tuple[str, str]]:
    if not isinstance(changes, dict):
        return []
    out = []
    for key, value in changes.items():
        if _is_change(key, value):
            text = f"{_plain(key, value[0])} → {_plain(key, value[1])}"
        else:
            text = _plain(key, value)
        out.append((key.replace("_", " "), text))
    return out


def _plain(key: str, value: Any) -> str:
    if value in (None, "", []):
        return "—"
    if isinstance(value, list):
        if key == "permissions":
            return ", ".join(permissions.labels(value)) or "—"
        return ", ".join(str(v) for v in value)
    moment = timefmt.as_datetime(value)
    if moment is not None:  # stored as ISO text: shown in the reader's time zone
        return timefmt.expiry(moment) if key.endswith("expires_at") else timefmt.when(moment)
    return str(value)


@owner_only
@require_http_methods(["GET"])
def activity(request: AccountRequest) -> HttpResponse:
    account = request.access.account
    people = account_people(account)
    events = AuditEvent.objects.filter(account=account).order_by("-created_at", "-pk")
    raw = request.GET.get("user", "")
    # Compared as text: any value that is not one of these people's ids selects nobody.
    selected = next((p.pk for p in people if str(p.pk) == raw), None)
    if selected is not None:
        events = events.filter(actor_id=selected)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        {"event": e, "action": action_label(e.action), "changes": _describe(e.changes)}
        for e in page.object_list
    ]
    return render(
        request,
        "audit/activity.html",
        {
            "page_obj": page,
            "rows": rows,
            "people": people,
            "selected": selected,
            "query": f"user={selected}" if selected else "",
        },
    )
