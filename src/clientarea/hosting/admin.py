"""Back office for services: the password is a write-only field and never shown."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from clientarea.audit.services import audit_record

from .models import Service
from .selectors import service_visible


class ServiceAdminForm(forms.ModelForm):
    new_password = forms.CharField(
        label="Control-panel password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: type the password the panel account has to store it "
        "(encrypted). Leave empty to keep the stored one. It is never shown here.",
    )

    class Meta:
        model = Service
        fields = [
            "account",
            "product_name",
            "domain",
            "status",
            "billing_cycle",
            "amount",
            "next_due_date",
            "server_hostname",
            "username",
        ]


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    form = ServiceAdminForm
    list_display = [
        "product_name",
        "domain",
        "account",
        "status",
        "billing_cycle",
        "amount",
        "next_due_date",
        "server_hostname",
    ]
    list_filter = ["status", "billing_cycle"]
    search_fields = ["product_name", "domain", "username", "account__company_name"]
    list_select_related = ["account", "account__owner"]
    autocomplete_fields = ["account"]
    readonly_fields = ["password_state", "password_changed_at", "created_at"]
    fieldsets = (
        (None, {"fields": ("account", "product_name", "domain", "status")}),
        ("Billing", {"fields": ("billing_cycle", "amount", "next_due_date")}),
        (
            "Control panel",
            {
                "fields": (
                    "server_hostname",
                    "username",
                    "new_password",
                    "password_state",
                    "password_changed_at",
                )
            },
        ),
        ("Dates", {"fields": ("created_at",)}),
    )

    def get_queryset(self, request: HttpRequest) -> Any:
        # As the customer pages do: never load the ciphertext, only whether one is stored.
        return service_visible().select_related("account__owner")

    @admin.display(description="Password stored")
    def password_state(self, obj: Service) -> str:
        return "yes (encrypted)" if getattr(obj, "password_stored", False) else "no"

    @method_decorator(sensitive_post_parameters("new_password"))
    def changeform_view(self, *args: Any, **kwargs: Any) -> Any:
        return super().changeform_view(*args, **kwargs)

    def save_model(self, request: HttpRequest, obj: Service, form: Any, change: bool) -> None:
        new_password = form.cleaned_data.get("new_password") or ""
        if new_password:
            obj.store_password(new_password)
        super().save_model(request, obj, form, change)
        changed = [f for f in form.changed_data if f != "new_password"]
        if new_password:
            changed.append("password")
        audit_record(
            action="service.updated" if change else "service.created",
            actor=request.user,
            account=obj.account,
            target=obj,
            changes={"fields": changed},
            request=request,
            is_staff_action=True,
        )
