"""Two-factor devices in the back office: who has one, never its secret.

django-otp registers a TOTPDevice admin that shows the key and a QR code and lets staff
edit or delete a customer's device silently. It is replaced here by a read-only list
without the key, the QR code or any configuration. Removing a customer's two-factor is
an action on Users (``accounts.admin``) that goes through
``security.services.two_factor_disable_by_staff``: audited on the customer's accounts
and emailed to them. Recovery codes (stored only as digests) are not in the admin at all.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice

if admin.site.is_registered(TOTPDevice):
    admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(admin.ModelAdmin):
    """Read-only: which users have an authenticator app, and when it was last used."""

    list_display = ["user", "name", "confirmed", "created_at", "last_used_at"]
    list_filter = ["confirmed"]
    search_fields = ["user__email"]
    list_select_related = ["user"]
    fields = ("user", "name", "confirmed", "created_at", "last_used_at")
    readonly_fields = ("user", "name", "confirmed", "created_at", "last_used_at")
    actions = None

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
