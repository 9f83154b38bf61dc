"""Times as people read them: in the active time zone (the person's own, see
accounts.middleware), with the zone named."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateformat import format as date_format
from django.utils.dateparse import parse_datetime

WHEN_FORMAT = "j M Y, H:i T"
DAY_FORMAT = "j M Y"


def as_datetime(value: Any) -> datetime | None:
    """A datetime, or an ISO 8601 text of one with its offset (as the audit trail stores
    them); anything else is None."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and "T" in value and len(value) >= 19:
        try:
            parsed = parse_datetime(value)
        except ValueError:
            return None
        if parsed is not None and timezone.is_aware(parsed):
            return parsed
    return None


def when(value: datetime | None) -> str:
    """ "31 Jan 2027, 18:05 GMT" in the active time zone."""
    if value is None:
        return ""
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return date_format(timezone.localtime(value), WHEN_FORMAT)


def expiry(value: datetime | None) -> str:
    """An access expiry: one set as a date ends at midnight after that day (see
    accounts.forms_users._end_of_day), so it reads as that day, not the next day's 00:00."""
    if value is None:
        return ""
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    local = timezone.localtime(value)
    if local.time() == time.min:
        last = local - timedelta(microseconds=1)
        return f"{date_format(last, DAY_FORMAT)}, end of day ({date_format(last, 'T')})"
    return date_format(local, WHEN_FORMAT)
