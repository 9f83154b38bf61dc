"""{{ size_in_mib|megabytes }}: a size the control panel reports, for people."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def megabytes(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 1024:
        return f"{value / 1024:.1f} GB"
    return f"{value:.0f} MB"
