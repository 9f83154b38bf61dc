"""The Activity Log's filters (date range, action, person) and its CSV export."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateformat import format as date_format

from clientarea.accounts.models import Account, User

from .labels import action_label
from .models import AuditEvent

STAFF = "staff"  # the person filter's choice for the provider's staff
FIRST_YEAR, LAST_YEAR = 2000, 2100


def _year_in_range(value: dt.date) -> None:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise forms.ValidationError(f"Choose a date between {FIRST_YEAR} and {LAST_YEAR}.")


class ActivityFilterForm(forms.Form):
    date_from = forms.DateField(
        label="From",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[_year_in_range],
        error_messages={"invalid": "Enter the From date as YYYY-MM-DD."},
    )
    date_to = forms.DateField(
        label="To",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        validators=[_year_in_range],
        error_messages={"invalid": "Enter the To date as YYYY-MM-DD."},
    )
    action = forms.ChoiceField(
        label="Action",
        required=False,
        error_messages={"invalid_choice": "Choose an action from the list."},
    )
    user = forms.ChoiceField(
        label="Person",
        required=False,
        error_messages={"invalid_choice": "Choose a person from the list."},
    )

    def __init__(self, *args: Any, people: Iterable[User], actions: Iterable[str], **kw: Any):
        super().__init__(*args, **kw)
        labelled = sorted(((a, action_label(a)) for a in actions), key=lambda c: c[1])
        action, user = self.fields["action"], self.fields["user"]
        assert isinstance(action, forms.ChoiceField) and isinstance(user, forms.ChoiceField)
        action.choices = [("", "Every action"), *labelled]
        user.choices = [
            ("", "Everyone"),
            *((str(p.pk), f"{p.get_full_name()} ({p.email})") for p in people),
            (STAFF, "Provider staff"),
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The To date must not be before the From date.")
            cleaned.pop("date_to", None)
        return cleaned


def activity_filtered(account: Account, filters: dict[str, Any]) -> QuerySet[AuditEvent]:
    """The account's events, newest first, narrowed by the valid filters. Dates are days
    in the reader's time zone (the active one): From at its start, To to its end."""
    events = AuditEvent.objects.filter(account=account)
    zone = timezone.get_current_timezone()
    if filters.get("date_from"):
        start = dt.datetime.combine(filters["date_from"], dt.time.min, tzinfo=zone)
        events = events.filter(created_at__gte=start)
    if filters.get("date_to"):
        end = dt.datetime.combine(filters["date_to"] + dt.timedelta(days=1), dt.time.min, zone)
        events = events.filter(created_at__lt=end)
    if filters.get("action"):
        events = events.filter(action=filters["action"])
    person = filters.get("user")
    if person == STAFF:
        events = events.filter(is_staff_action=True)
    elif person:
        events = events.filter(Q(actor_id=int(person)))
    return events.order_by("-created_at", "-pk")


def actions_recorded(account: Account) -> list[str]:
    """The kinds of action recorded on the account (one query): the Action filter's list.

    A loose index scan on (account, action): each step looks up the next action after the
    last in the index, so it reads one entry per kind of action, however many events the
    account has. (A DISTINCT read every event of the account: 40,000 for bench_scale's
    large account, the Activity Log 5x slower than for a small one.)"""
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    # ORDER BY ... LIMIT 1 rather than MIN(): the planner then always walks the index,
    # whatever its estimate of the account's events.
    first = f"SELECT e.action FROM {table} e WHERE e.account_id = %s"  # noqa: S608
    sql = f"""
        WITH RECURSIVE recorded(action) AS (
            SELECT ({first} ORDER BY e.action LIMIT 1)
            UNION ALL
            SELECT ({first} AND e.action > recorded.action ORDER BY e.action LIMIT 1)
            FROM recorded WHERE recorded.action IS NOT NULL
        )
        SELECT action FROM recorded WHERE action IS NOT NULL"""  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [account.pk, account.pk])
        return [row[0] for row in cursor.fetchall()]


# --- CSV ---------------------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading
    apostrophe (OWASP's CSV injection advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    def write(self, value: str) -> str:
        return value


def activity_csv_rows(
    events: QuerySet[AuditEvent], zone: ZoneInfo | dt.tzinfo, describe: Any
) -> Iterator[str]:
    """The CSV lines, header first, fetched in chunks: memory does not grow with the log.
    Times are in `zone`, named in the header and on each time."""
    writer = csv.writer(_Echo())
    zone_name = getattr(zone, "key", None) or str(zone)
    yield writer.writerow(
        [f"When ({zone_name})", "Who", "Staff", "What", "Action", "About", "Changes", "IP address"]
    )
    for event in events.iterator(chunk_size=500):
        local = timezone.localtime(event.created_at, zone)
        with timezone.override(zone):  # times inside the changes too, row by row
            changes = "; ".join(f"{key}: {text}" for key, text in describe(event.changes))
        cells = [
            date_format(local, "Y-m-d H:i:s T"),
            event.actor_label or ("Provider staff" if event.is_staff_action else "System"),
            "yes" if event.is_staff_action else "no",
            action_label(event.action),
            event.action,
            event.target_label,
            changes,
            event.ip_address or "",
        ]
        yield writer.writerow([csv_safe(c) for c in cells])
