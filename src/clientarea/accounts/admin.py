from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse
from django_otp.plugins.otp_totp.models import TOTPDevice

from clientarea.security.services import (
    SecurityError,
    email_set_by_staff,
    password_changed_by_staff,
    sessions_end_by_staff,
    two_factor_disable_by_staff,
)

from .admin_ownership import AccountOwnershipAdminMixin, OwnershipTransferAdmin
from .models import Account, Contact, Invitation, Membership, OwnershipTransfer, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "first_name", "last_name", "is_staff", "is_active", "last_login"]
    search_fields = ["email", "first_name", "last_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Name", {"fields": ("first_name", "last_name")}),
        ("Back office", {"fields": ("is_active", "is_staff", "is_superuser", "groups")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "first_name", "last_name", "password1", "password2"),
            },
        ),
    )
    filter_horizontal = ["groups"]
    actions = ["two_factor_disable", "sessions_end"]

    # A staff change to a customer's security (two-factor, sessions, email, password)
    # goes through security.services: audited on the customer's accounts as a staff
    # action and emailed to the customer.

    def get_list_display(self, request: HttpRequest) -> Any:
        return [*super().get_list_display(request), "two_factor"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        confirmed = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
        return super().get_queryset(request).annotate(has_two_factor=Exists(confirmed))

    @admin.display(description="Two-factor", boolean=True)
    def two_factor(self, obj: User) -> bool:
        return bool(getattr(obj, "has_two_factor", False))

    @admin.action(
        description="Turn off two-factor of the selected users (they are emailed)",
        permissions=["change"],
    )
    def two_factor_disable(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        staff: Any = request.user
        done = [
            u.email
            for u in queryset
            if two_factor_disable_by_staff(user=u, staff=staff, request=request)
        ]
        if done:
            messages.success(request, f"Two-factor turned off for: {', '.join(done)}.")
        else:
            messages.info(request, "None of the selected users had two-factor on.")

    @admin.action(
        description="End all sessions of the selected users (they are emailed)",
        permissions=["change"],
    )
    def sessions_end(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        staff: Any = request.user
        total = sum(sessions_end_by_staff(user=u, staff=staff, request=request) for u in queryset)
        messages.success(request, f"{total} session{'s' if total != 1 else ''} ended.")

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        if not change or "email" not in form.changed_data:
            super().save_model(request, obj, form, change)
            return
        # The other fields are saved as usual; the address through the service.
        new_email = obj.email
        obj.email = User.objects.only("email").get(pk=obj.pk).email
        super().save_model(request, obj, form, change)
        staff: Any = request.user
        try:
            email_set_by_staff(user=obj, new_email=new_email, staff=staff, request=request)
        except SecurityError as exc:
            messages.error(request, f"The email address was not changed: {exc}")

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> Any:
        if request.method != "POST":
            return super().user_change_password(request, id, form_url)
        user = self.get_object(request, id)
        before = user.password if user is not None else None
        with transaction.atomic():
            response: HttpResponse = super().user_change_password(request, id, form_url)
            if user is not None:
                user.refresh_from_db(fields=["password"])
                if user.password != before:
                    staff: Any = request.user
                    password_changed_by_staff(user=user, staff=staff, request=request)
        return response


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("user", "permissions", "scope", "status", "expires_at", "created_at", "revoked_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ContactInline(admin.TabularInline):
    """Read-only: who receives the account's email is the customer's choice, made in the
    client area where the grant bounds it and a new address must confirm itself. Staff
    may remove a contact (that sends nothing to anyone)."""

    model = Contact
    extra = 0
    fields = ("name", "email", "phone", "email_kinds", "confirmed_at", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(AccountOwnershipAdminMixin):
    list_display = ["id", "company_name", "owner", "country", "currency", "credit_balance"]
    search_fields = ["company_name", "owner__email"]
    list_select_related = ["owner"]
    autocomplete_fields = ["owner"]
    # The owner's own email choice is theirs (Emails You Receive, audited): shown, not edited.
    readonly_fields = ["credit_balance", "created_at", "owner_email_kinds_off"]
    inlines = [MembershipInline, ContactInline]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An account is closed, never deleted: its invoices and audit trail are kept for
        # the retention period (ACCOUNT_RETENTION_YEARS).
        return False


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "account", "status", "expires_at", "created_at"]
    list_filter = ["status"]
    search_fields = ["user__email", "account__company_name"]
    list_select_related = ["user", "account__owner"]
    readonly_fields = [
        "account",
        "user",
        "permissions",
        "scope",
        "status",
        "expires_at",
        "created_at",
        "revoked_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "account", "status", "invited_by", "sent_at", "expires_at"]
    list_filter = ["status"]
    search_fields = ["email", "account__company_name"]
    list_select_related = ["account__owner", "invited_by"]
    exclude = ["token_hash"]
    readonly_fields = [
        "account",
        "email",
        "permissions",
        "scope",
        "access_expires_at",
        "status",
        "expires_at",
        "invited_by",
        "created_at",
        "sent_at",
        "accepted_at",
        "accepted_by",
        "cancelled_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


admin.site.register(OwnershipTransfer, OwnershipTransferAdmin)
