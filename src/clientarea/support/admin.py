"""Back office for support: staff answer tickets, change status, department and priority.

The change page of a ticket shows the thread (read-only) and a reply box; saving goes
through the service layer, so a staff reply is audited and emails the ticket's opener.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html_join

from clientarea.core.validators import validate_multi_line

from . import services
from .attachments import DOWNLOAD_UNAVAILABLE, HELP_TEXT, attachment_response
from .forms import MESSAGE_MAX_LENGTH, AttachmentsField
from .models import Attachment, Department, Ticket, TicketMessage


@admin.register(Department)
class DepartmentAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "is_active", "order"]
    list_editable = ["is_active", "order"]


class TicketMessageInline(admin.StackedInline):
    model = TicketMessage
    extra = 0
    can_delete = False
    fields = ("author_name", "author_email", "is_staff", "created_at", "body", "files")
    readonly_fields = fields
    verbose_name = "message"
    verbose_name_plural = "thread"

    def get_queryset(self, request: HttpRequest) -> QuerySet[TicketMessage]:
        return super().get_queryset(request).prefetch_related("attachments")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="attachments")
    def files(self, message: TicketMessage) -> str:
        attachments: list[Attachment] = list(message.attachments.all())
        if not attachments:
            return "—"
        return format_html_join(
            ", ",
            '<a href="{}">{}</a> ({})',
            (
                (
                    reverse("admin:support_attachment_download", args=[a.pk]),
                    a.original_name,
                    a.content_type,
                )
                for a in attachments
            ),
        )


class TicketAdminForm(forms.ModelForm):
    reply = forms.CharField(
        label="Staff reply",
        required=False,
        max_length=MESSAGE_MAX_LENGTH,
        validators=[validate_multi_line],
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        help_text="Emailed to the person who opened the ticket (and the account's support "
        "contacts). Status becomes Answered unless you choose another status above.",
    )
    reply_attachments = AttachmentsField(label="Reply attachments", help_text=HELP_TEXT)

    class Meta:
        model = Ticket
        fields = ["status", "department", "priority"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # Files are sent as part of a reply: without one they would be stored and never
        # recorded or shown, while the save looked normal. Refused before anything is
        # stored or changed.
        if cleaned.get("reply_attachments") and not cleaned.get("reply"):
            self.add_error(
                "reply_attachments",
                "Attachments are sent with a reply: write the reply too, or remove the "
                "files. Nothing was saved.",
            )
        return cleaned


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    form = TicketAdminForm
    list_display = [
        "id",
        "subject",
        "account",
        "opener_name",
        "department",
        "priority",
        "status",
        "updated_at",
    ]
    list_display_links = ["id", "subject"]
    list_filter = ["status", "department", "priority"]
    search_fields = ["subject", "opener_name", "opener_email", "account__company_name"]
    list_select_related = ["account__owner", "department"]
    date_hierarchy = "updated_at"
    readonly_fields = [
        "account",
        "subject",
        "opener_name",
        "opener_email",
        "created_at",
        "updated_at",
        "about",
    ]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "account",
                    "subject",
                    ("opener_name", "opener_email"),
                    ("created_at", "updated_at"),
                    "about",
                )
            },
        ),
        ("Handling", {"fields": ("status", "department", "priority")}),
        ("Reply", {"fields": ("reply", "reply_attachments")}),
    )
    inlines = [TicketMessageInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Ticket]:
        return super().get_queryset(request).select_related("account__owner", "department")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tickets are opened by customers, under their own name

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # close a ticket instead: the thread stays on record

    def save_model(
        self, request: HttpRequest, obj: Ticket, form: forms.ModelForm, change: bool
    ) -> None:
        """Never save the form's instance directly: go through the services."""
        staff = request.user
        data = form.cleaned_data
        status_changed = "status" in form.changed_data
        try:
            # The reply's files are stored before the transaction (the store may be
            # another machine), and deleted again if it fails.
            with (
                # Only a reply carries files (the form refuses them without one).
                services.attachments_store(
                    (data.get("reply_attachments") or []) if data.get("reply") else []
                ) as files,
                transaction.atomic(),
            ):
                services.ticket_update_staff(
                    ticket=obj,
                    staff=staff,  # type: ignore[arg-type]
                    status=data["status"] if status_changed and not data.get("reply") else None,
                    department=data["department"],
                    priority=data["priority"],
                    request=request,
                )
                if data.get("reply"):
                    services.ticket_reply_staff(
                        ticket=obj,
                        staff=staff,  # type: ignore[arg-type]
                        body=data["reply"],
                        files=files,
                        status=data["status"] if status_changed else None,
                        request=request,
                    )
        except (services.TicketError, ValidationError) as exc:
            reason = " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
            messages.error(request, f"Nothing was saved: {reason}")
            request._ticket_save_failed = True  # type: ignore[attr-defined]
            return
        obj.refresh_from_db()
        if data.get("reply"):
            messages.success(
                request, f"Your reply to ticket #{obj.pk} was emailed to the customer."
            )

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Unlike the admin's own, not one transaction around the whole request: saving
        # stores the reply's attachments (an outside call, never inside a transaction)
        # and then makes its changes in one transaction of its own (save_model).
        response: HttpResponse = self._changeform_view(  # type: ignore[attr-defined]
            request, object_id, form_url, extra_context
        )
        return response

    # When the service refused, the admin must neither log a change nor say "changed
    # successfully": the error message stands and the page opens again.
    def log_change(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if getattr(request, "_ticket_save_failed", False):
            return None
        return super().log_change(request, obj, message)

    def response_change(self, request: HttpRequest, obj: Ticket) -> HttpResponse:
        if getattr(request, "_ticket_save_failed", False):
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "attachment/<int:pk>/",
                self.admin_site.admin_view(self.attachment_download),
                name="support_attachment_download",
            ),
            *super().get_urls(),
        ]

    def attachment_download(self, request: HttpRequest, pk: int) -> HttpResponseBase:
        if not self.has_view_permission(request):
            raise PermissionDenied
        attachment = Attachment.objects.filter(pk=pk).first()
        if attachment is None:
            raise Http404("No such attachment.")
        try:
            return attachment_response(attachment)
        except OSError:
            messages.error(request, DOWNLOAD_UNAVAILABLE)
            return HttpResponseRedirect(
                reverse("admin:support_ticket_change", args=[attachment.message.ticket_id])
            )
