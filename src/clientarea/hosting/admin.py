"""Back office for services: the password is a write-only field and never shown."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, cast

import idna
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.http import HttpRequest
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from clientarea.accounts.models import User
from clientarea.audit.services import audit_record
from clientarea.core.validators import validate_single_line

from . import services
from .models import PanelServer, Service
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
            "server",
            "server_hostname",
            "username",
        ]


class ServicePanelActionForm(ActionForm):
    reason = forms.CharField(
        label="Reason (for suspensions)",
        required=False,
        max_length=200,
        validators=[validate_single_line],
    )


def _panel_action(
    modeladmin: admin.ModelAdmin[Service],
    request: HttpRequest,
    queryset: Any,
    act: Callable[[Service], services.ChangeOutcome],
    done: str,
) -> None:
    """Run a panel change on each selected service, one outside call at a time (never
    inside a transaction), and report each result in words."""
    for service in queryset:
        try:
            outcome = act(service)
        except services.ServiceActionError as exc:
            modeladmin.message_user(request, f"{service}: {exc}", messages.ERROR)
        else:
            if outcome.pending:
                modeladmin.message_user(
                    request,
                    f"{service}: the control panel has not answered; the change is pending "
                    "and will be settled by the worker.",
                    messages.WARNING,
                )
            else:
                modeladmin.message_user(request, f"{service}: {done}.", messages.SUCCESS)


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    form = ServiceAdminForm
    action_form = ServicePanelActionForm
    actions = ["suspend_on_panel", "unsuspend_on_panel"]
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
                    "server",
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

    @admin.action(description="Suspend on the control panel", permissions=["change"])
    def suspend_on_panel(self, request: HttpRequest, queryset: Any) -> None:
        reason = (request.POST.get("reason") or "").strip()
        if not reason or not reason.isprintable():
            self.message_user(
                request, "Give a reason (one line) for the suspension.", messages.ERROR
            )
            return
        user = cast(User, request.user)
        _panel_action(
            self,
            request,
            queryset,
            lambda s: services.service_suspend(
                service=s, staff=user, reason=reason, request=request
            ),
            "suspended",
        )

    @admin.action(description="Unsuspend on the control panel", permissions=["change"])
    def unsuspend_on_panel(self, request: HttpRequest, queryset: Any) -> None:
        user = cast(User, request.user)
        _panel_action(
            self,
            request,
            queryset,
            lambda s: services.service_unsuspend(service=s, staff=user, request=request),
            "unsuspended",
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


class PanelServerAdminForm(forms.ModelForm):
    """A WHM server: the API token is write-only (stored encrypted, never shown), and TLS
    verification can be turned off only on a test or demo installation."""

    new_api_token = forms.CharField(
        label="API token",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Write-only: paste the token created in WHM (Development » Manage API "
        "Tokens) for the API user below. It is stored encrypted and never shown here; "
        "leave empty to keep the stored one.",
    )

    class Meta:
        model = PanelServer
        fields = ["name", "hostname", "port", "api_user", "verify_tls", "ca_file"]

    def clean_hostname(self) -> str:
        hostname: str = (self.cleaned_data.get("hostname") or "").strip().lower().rstrip(".")
        if not hostname or any(c in hostname for c in "/:@ ?#"):
            raise forms.ValidationError(
                "Enter the host name alone (server.example.net): no https://, port or path."
            )
        try:  # what a URL can carry: labels of 1-63 characters, valid IDNA
            ascii_name = idna.encode(hostname, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise forms.ValidationError(
                "That is not a valid host name (each part 1 to 63 letters, digits or hyphens)."
            ) from None
        if "." not in ascii_name:
            raise forms.ValidationError("Enter the server's full host name (server.example.net).")
        return ascii_name

    def clean_port(self) -> int:
        port: int = self.cleaned_data["port"]
        if not 1 <= port <= 65535:
            raise forms.ValidationError("Enter a port between 1 and 65535 (WHM's is 2087).")
        return port

    def clean_new_api_token(self) -> str:
        token: str = self.cleaned_data.get("new_api_token") or ""
        if token and any(c.isspace() for c in token):
            raise forms.ValidationError("An API token is one word, without spaces.")
        if not token and not self.instance.has_api_token:
            raise forms.ValidationError("Paste the server's API token.")
        return token

    def clean_verify_tls(self) -> bool:
        verify: bool = self.cleaned_data.get("verify_tls", True)
        if not verify and not (settings.DEBUG or settings.DEMO_MODE):
            raise forms.ValidationError(
                "TLS verification stays on for real customers: without it, anyone between "
                "us and the server could read the API token. If the server's certificate is "
                "self-signed or from a private CA, keep verification on and give that CA's "
                "bundle below."
            )
        return verify

    def clean_ca_file(self) -> str:
        ca_file: str = self.cleaned_data.get("ca_file") or ""
        if ca_file and not os.path.isfile(ca_file):
            raise forms.ValidationError(
                "No such file on this server. Give the path of a PEM file every app server "
                "can read, or leave it empty to use the system's CAs."
            )
        return ca_file


@admin.register(PanelServer)
class PanelServerAdmin(admin.ModelAdmin):
    form = PanelServerAdminForm
    list_display = ["name", "hostname", "port", "api_user", "verify_tls", "token_state"]
    search_fields = ["name", "hostname"]
    readonly_fields = ["token_state", "created_at"]
    fieldsets = (
        (None, {"fields": ("name", "hostname", "port")}),
        ("WHM API", {"fields": ("api_user", "new_api_token", "token_state")}),
        ("TLS", {"fields": ("verify_tls", "ca_file")}),
        ("Dates", {"fields": ("created_at",)}),
    )

    @admin.display(description="API token stored")
    def token_state(self, obj: PanelServer) -> str:
        return "yes (encrypted)" if obj.has_api_token else "no"

    @method_decorator(sensitive_post_parameters("new_api_token"))
    def changeform_view(self, *args: Any, **kwargs: Any) -> Any:
        return super().changeform_view(*args, **kwargs)

    def save_model(self, request: HttpRequest, obj: PanelServer, form: Any, change: bool) -> None:
        token = form.cleaned_data.get("new_api_token") or ""
        if token:
            obj.set_api_token(token)
        super().save_model(request, obj, form, change)
        changed = [f for f in form.changed_data if f != "new_api_token"]
        if token:
            changed.append("api_token")
        audit_record(
            action="panel_server.updated" if change else "panel_server.created",
            actor=request.user,
            target=obj,
            changes={"fields": changed},
            request=request,
            is_staff_action=True,
        )
