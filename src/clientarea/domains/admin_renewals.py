"""Back office for renewals: the price list staff keep, and the customers' renewal orders
(a paid one that failed at the registry is listed here, to be tried again)."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.http import HttpRequest

from clientarea.accounts.models import User

from . import renewals
from .models import DomainPrice, DomainRenewal
from .services import DomainActionError


@admin.register(DomainPrice)
class DomainPriceAdmin(admin.ModelAdmin):
    list_display = ["tld", "years", "renew_price", "currency"]
    list_filter = ["currency", "years"]
    search_fields = ["tld"]
    ordering = ["tld", "currency", "years"]


@admin.register(DomainRenewal)
class DomainRenewalAdmin(admin.ModelAdmin):
    list_display = [
        "domain",
        "account",
        "years",
        "price",
        "currency",
        "invoice_number",
        "state",
        "message",
        "created_at",
        "paid_at",
        "finished_at",
    ]
    list_filter = ["state"]
    search_fields = ["domain__name", "account__company_name", "invoice_number"]
    list_select_related = ["domain", "account"]
    actions = ["retry_renewal"]
    readonly_fields = [f.name for f in DomainRenewal._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # customers order renewals; staff renew from the domain's actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the record of a paid renewal stays

    @admin.action(description="Try the renewal again at the registry", permissions=["change"])
    def retry_renewal(self, request: HttpRequest, queryset: Any) -> None:
        staff = cast(User, request.user)
        for order in queryset.select_related("domain"):
            try:
                result = renewals.renewal_retry(order_id=order.pk, staff=staff, request=request)
            except DomainActionError as exc:
                self.message_user(request, f"{order.domain}: {exc}", messages.ERROR)
            else:
                level = messages.SUCCESS if result == "done" else messages.WARNING
                self.message_user(request, f"{order.domain}: {result}.", level)
