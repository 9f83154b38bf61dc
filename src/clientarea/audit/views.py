"""The owner's activity log: the account's audit events, filtered by date range, action
and person, and exported as CSV."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from clientarea.accounts import permissions
from clientarea.accounts.policy import AccountRequest, owner_only
from clientarea.accounts.selectors import account_people
from clientarea.core import timefmt

from .filters import ActivityFilterForm, actions_recorded, activity_csv_rows, activity_filtered
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


def _filtered(request: AccountRequest) -> tuple[ActivityFilterForm, QuerySet[AuditEvent]]:
    """The filter form bound to the query string, and the events its valid fields select
    (a bad field is reported on the form and filters nothing)."""
    account = request.access.account
    form = ActivityFilterForm(
        request.GET or None, people=account_people(account), actions=actions_recorded(account)
    )
    filters: dict[str, Any] = {}
    if form.is_bound:
        form.is_valid()
        filters = form.cleaned_data
    return form, activity_filtered(account, filters)


def _query(form: ActivityFilterForm) -> str:
    """The valid filters as a query string, for pagination and the export link."""
    if not form.is_bound:
        return ""
    data = {k: v for k, v in form.cleaned_data.items() if v not in (None, "")}
    return urlencode({k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in data.items()})


@owner_only
@require_http_methods(["GET"])
def activity(request: AccountRequest) -> HttpResponse:
    form, events = _filtered(request)
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        {"event": e, "action": action_label(e.action), "changes": _describe(e.changes)}
        for e in page.object_list
    ]
    query = _query(form)
    return render(
        request,
        "audit/activity.html",
        {
            "page_obj": page,
            "rows": rows,
            "form": form,
            "filtered": bool(query),
            "query": query,
        },
    )


@owner_only
@require_http_methods(["GET"])
def activity_export(request: AccountRequest) -> HttpResponseBase:
    """The filtered Activity Log as CSV, streamed: the same filters as the page (a bad
    one is shown on the page instead), times in the owner's time zone, named."""
    form, events = _filtered(request)
    if form.is_bound and form.errors:
        return redirect(f"{reverse('audit:activity')}?{request.GET.urlencode()}")
    zone = timezone.get_current_timezone()
    response = StreamingHttpResponse(
        activity_csv_rows(events, zone, _describe), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = (
        f'attachment; filename="activity-{request.access.account.pk}-{stamp}.csv"'
    )
    return response
