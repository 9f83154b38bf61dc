"""{{ value|when }} and {{ value|expiry }}: times in the person's zone, with the zone named."""

from __future__ import annotations

from datetime import datetime

from django import template

from clientarea.core import timefmt

register = template.Library()


@register.filter
def when(value: datetime | None) -> str:
    return timefmt.when(value)


@register.filter
def expiry(value: datetime | None) -> str:
    return timefmt.expiry(value)
