"""Back office: changes handed to an outside system, for staff to see what is pending."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import PendingChange


@admin.register(PendingChange)
class PendingChangeAdmin(admin.ModelAdmin):
    """Read-only: the worker settles pending changes by asking the outside system; staff
    never edit them by hand (the encrypted secret a change may carry is not shown)."""

    list_display = [
        "operation",
        "target",
        "account",
        "actor",
        "state",
        "attempts",
        "created_at",
        "next_check_at",
        "message",
    ]
    list_filter = ["state", "operation"]
    search_fields = ["target", "account__company_name", "key"]
    list_select_related = ["account", "actor"]
    fields = (
        "key",
        "operation",
        "target",
        "account",
        "actor",
        "params",
        "state",
        "message",
        "attempts",
        "created_at",
        "next_check_at",
        "finished_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
