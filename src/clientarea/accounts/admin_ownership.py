"""Back office: transfer an account's ownership (with a reason) and confirm a closing.

Both go through the same service functions as the customer's pages, so they are audited
(as staff actions) and emailed the same way. The owner field itself is read-only on an
existing account: ownership only moves through a transfer."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from . import ownership
from .closing import closure_items
from .models import Account, OwnershipTransfer, User
from .services import AccessError

CLOSURE_FIELDS = (
    "close_requested_at",
    "close_requested_by",
    "closed_at",
    "closed_by",
    "retain_until",
)


class StaffTransferForm(forms.Form):
    new_owner_email = forms.EmailField(
        label="New owner's login email", help_text="An existing, active login."
    )
    former_owner_stays = forms.BooleanField(
        label="The former owner stays as a sub-account with All Permissions", required=False
    )
    keep_payment_methods = forms.BooleanField(
        label="Leave the stored payment methods with the account", required=False
    )
    reason = forms.CharField(label="Reason (kept in the audit trail)", widget=forms.Textarea)

    def clean_new_owner_email(self) -> User:
        email = self.cleaned_data["new_owner_email"]
        user = User.objects.filter(email__iexact=email.strip()).first()
        if user is None:
            raise forms.ValidationError("No login has this email address.")
        return user


class ClosingFilter(admin.SimpleListFilter):
    """Staff find the accounts whose owner asked to close them."""

    title = "closing"
    parameter_name = "closing"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("requested", "Closing requested"), ("closed", "Closed"), ("open", "Open")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "requested":
            return queryset.filter(close_requested_at__isnull=False, closed_at__isnull=True)
        if self.value() == "closed":
            return queryset.filter(closed_at__isnull=False)
        if self.value() == "open":
            return queryset.filter(closed_at__isnull=True)
        return queryset


class AccountOwnershipAdminMixin(admin.ModelAdmin):
    actions = ["transfer_ownership", "confirm_closing"]

    def get_list_filter(self, request: HttpRequest) -> Any:
        return [*super().get_list_filter(request), ClosingFilter]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ["owner", *CLOSURE_FIELDS]
        return fields

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:account_id>/transfer-ownership/",
                self.admin_site.admin_view(self.transfer_view),
                name="accounts_account_transfer",
            ),
            path(
                "<int:account_id>/confirm-closing/",
                self.admin_site.admin_view(self.close_view),
                name="accounts_account_close",
            ),
            *super().get_urls(),
        ]

    def _one(self, request: HttpRequest, queryset: QuerySet[Account]) -> Account | None:
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one account.", messages.WARNING)
            return None
        return queryset.first()

    @admin.action(description="Transfer ownership…")
    def transfer_ownership(
        self, request: HttpRequest, queryset: QuerySet[Account]
    ) -> HttpResponse | None:
        account = self._one(request, queryset)
        if account is None:
            return None
        return HttpResponseRedirect(reverse("admin:accounts_account_transfer", args=[account.pk]))

    @admin.action(description="Confirm closing…")
    def confirm_closing(
        self, request: HttpRequest, queryset: QuerySet[Account]
    ) -> HttpResponse | None:
        account = self._one(request, queryset)
        if account is None:
            return None
        return HttpResponseRedirect(reverse("admin:accounts_account_close", args=[account.pk]))

    def _account(self, request: HttpRequest, account_id: int) -> Account:
        account = get_object_or_404(Account.objects.select_related("owner"), pk=account_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        return account

    def _page(
        self, request: HttpRequest, template: str, account: Account, **context: Any
    ) -> TemplateResponse:
        return TemplateResponse(
            request,
            template,
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "account": account,
                "title": context.pop("title"),
                **context,
            },
        )

    def transfer_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        account = self._account(request, account_id)
        form = StaffTransferForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            assert isinstance(request.user, User)
            try:
                ownership.ownership_transfer_by_staff(
                    account=account,
                    staff=request.user,
                    new_owner=form.cleaned_data["new_owner_email"],
                    reason=form.cleaned_data["reason"],
                    former_owner_stays=form.cleaned_data["former_owner_stays"],
                    keep_payment_methods=form.cleaned_data["keep_payment_methods"],
                    request=request,
                )
            except (ownership.OwnershipError, AccessError) as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(request, f"{account} has a new owner.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:accounts_account_change", args=[account.pk])
                )
        return self._page(
            request,
            "admin/accounts/transfer_ownership.html",
            account,
            title=f"Transfer ownership of {account}",
            form=form,
        )

    def close_view(self, request: HttpRequest, account_id: int) -> HttpResponse:
        account = self._account(request, account_id)
        items = closure_items(account)
        error = ""
        if request.method == "POST":
            assert isinstance(request.user, User)
            try:
                ownership.account_close_confirm(
                    account=account, staff=request.user, request=request
                )
            except (ownership.OwnershipError, AccessError) as exc:
                error = str(exc)
            else:
                self.message_user(request, f"{account} is closed.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse("admin:accounts_account_change", args=[account.pk])
                )
        return self._page(
            request,
            "admin/accounts/confirm_closing.html",
            account,
            title=f"Confirm closing of {account}",
            items=items,
            error=error,
        )


class OwnershipTransferAdmin(admin.ModelAdmin):
    list_display = ["account", "to_email", "status", "by_staff", "created_at", "expires_at"]
    list_filter = ["status", "by_staff"]
    search_fields = ["to_email", "account__company_name"]
    list_select_related = ["account__owner"]
    exclude = ["token_hash"]
    actions = ["cancel_pending"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in OwnershipTransfer._meta.fields if f.name != "token_hash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Cancel the selected pending transfers")
    def cancel_pending(self, request: HttpRequest, queryset: QuerySet[OwnershipTransfer]) -> None:
        assert isinstance(request.user, User)
        done = 0
        for transfer in queryset.filter(status=OwnershipTransfer.Status.PENDING):
            ownership.ownership_transfer_cancel(
                transfer=transfer, actor=request.user, request=request
            )
            done += 1
        self.message_user(request, f"{done} transfer(s) cancelled.", messages.SUCCESS)
