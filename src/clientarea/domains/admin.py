"""Back office for domains: staff type names in Unicode or ASCII, stored in ASCII."""

from __future__ import annotations

import contextlib
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from clientarea.accounts.models import User
from clientarea.audit.services import audit_record

from . import names, services
from .models import Domain


class DomainAdminForm(forms.ModelForm):
    nameservers_text = forms.CharField(
        label="Nameservers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="One host name per line, 2 to 5 of them (may be left empty while pending).",
    )

    class Meta:
        model = Domain
        fields = [
            "account",
            "name",
            "status",
            "registration_date",
            "expiry_date",
            "auto_renew",
            "registrar_lock",
        ]
        help_texts = {"name": "Unicode (café.ie) or ASCII (xn--caf-dma.ie); stored in ASCII."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["name"] = self.instance.unicode_name
            self.initial["nameservers_text"] = "\n".join(self.instance.unicode_nameservers)

    def clean_name(self) -> str:
        try:
            name = names.domain_name_normalise(self.cleaned_data["name"])
        except names.InvalidName as exc:
            raise ValidationError(f"The domain name {exc}.") from exc
        clash = Domain.objects.filter(name=name).exclude(pk=self.instance.pk)
        if clash.exists():
            raise ValidationError(f"{names.to_unicode(name)} already exists.")
        return name

    def clean_nameservers_text(self) -> list[str]:
        lines = [line.strip() for line in self.cleaned_data["nameservers_text"].splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            return []
        try:
            return names.nameservers_validate(lines)
        except ValidationError as exc:
            raise ValidationError([m for msgs in exc.message_dict.values() for m in msgs]) from exc

    def save(self, commit: bool = True) -> Domain:
        self.instance.nameservers = self.cleaned_data.get("nameservers_text", [])
        return super().save(commit=commit)


class DomainRegistryActionForm(ActionForm):
    years = forms.TypedChoiceField(
        label="Years (for renewals)",
        required=False,
        coerce=int,
        choices=[(n, str(n)) for n in range(1, services.MAX_RENEWAL_YEARS + 1)],
        initial=1,
    )


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    form = DomainAdminForm
    action_form = DomainRegistryActionForm
    actions = ["renew_at_registry", "sync_from_registry"]
    list_display = [
        "display_name",
        "account",
        "status",
        "registration_date",
        "expiry_date",
        "auto_renew",
        "registrar_lock",
    ]
    list_filter = ["status", "auto_renew", "registrar_lock"]
    search_fields = ["name", "account__company_name"]
    list_select_related = ["account", "account__owner"]
    autocomplete_fields = ["account"]
    fields = [
        "account",
        "name",
        "status",
        "registration_date",
        "expiry_date",
        "auto_renew",
        "registrar_lock",
        "nameservers_text",
    ]

    @admin.action(description="Renew at the registry", permissions=["change"])
    def renew_at_registry(self, request: HttpRequest, queryset: Any) -> None:
        try:
            years = int(request.POST.get("years") or 1)
        except ValueError:
            years = 0
        staff = cast(User, request.user)
        # One registry conversation per domain, never inside a transaction.
        for domain in queryset.select_related("account"):
            try:
                outcome = services.domain_renew(
                    domain=domain, staff=staff, years=years, request=request
                )
            except services.DomainActionError as exc:
                self.message_user(request, f"{domain.unicode_name}: {exc}", messages.ERROR)
            else:
                if outcome.pending:
                    self.message_user(
                        request,
                        f"{domain.unicode_name}: the registry has not answered; the renewal "
                        "is pending and will be settled by the worker.",
                        messages.WARNING,
                    )
                else:
                    fresh = Domain.objects.get(pk=domain.pk)
                    self.message_user(
                        request,
                        f"{domain.unicode_name}: renewed for {years} year(s), "
                        f"now expires {fresh.expiry_date:%d %b %Y}.",
                        messages.SUCCESS,
                    )

    @admin.action(description="Sync from the registry (domain:info)", permissions=["change"])
    def sync_from_registry(self, request: HttpRequest, queryset: Any) -> None:
        staff = cast(User, request.user)
        for domain in queryset.select_related("account"):
            try:
                changed = services.domain_registry_sync(domain=domain, staff=staff, request=request)
            except services.DomainActionError as exc:
                self.message_user(request, f"{domain.unicode_name}: {exc}", messages.ERROR)
            else:
                what = ", ".join(changed) if changed else "already matched the registry"
                self.message_user(request, f"{domain.unicode_name}: {what}.", messages.SUCCESS)

    @admin.display(description="Domain", ordering="name")
    def display_name(self, obj: Domain) -> str:
        return obj.unicode_name

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> Any:
        # Staff may search for an IDN in Unicode; names are stored in ASCII.
        if "." in search_term and not search_term.isascii():
            with contextlib.suppress(names.InvalidName):
                search_term = names.to_ascii(search_term, min_labels=1)
        return super().get_search_results(request, queryset, search_term)

    def save_model(self, request: HttpRequest, obj: Domain, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit_record(
            action="domain.updated" if change else "domain.created",
            actor=request.user,
            account=obj.account,
            target=obj,
            changes={"fields": list(form.changed_data)},
            request=request,
            is_staff_action=True,
        )
