from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.views.decorators.cache import never_cache

from .demo_mail import demo_mail_for_outbox, demo_mail_list
from .mail_server import mail_server_outage
from .models import OutboxEmail
from .services import outbox_retry

# The text of an email that still holds a one-time link (an invitation, a password reset,
# a contact confirmation: until it is sent) is never shown, not even to staff: whoever
# reads it could use the link. Nor is the worker's claim token.
HIDDEN = ("body_text", "body_after_send", "claim_token")
SHOWN = (*(f.name for f in OutboxEmail._meta.fields if f.name not in HIDDEN), "text")


def method_decorator_never_cache(view: Any) -> Any:
    """`never_cache` for a ModelAdmin method: the viewer's pages hold one-time links."""
    from django.utils.decorators import method_decorator

    return method_decorator(never_cache)(view)


@admin.register(OutboxEmail)
class OutboxEmailAdmin(admin.ModelAdmin):
    list_display = ["created_at", "to_email", "subject", "kind", "status", "attempts", "sent_at"]
    list_filter = ["status", "kind"]
    search_fields = ["to_email", "subject"]
    fields = SHOWN
    readonly_fields = SHOWN
    actions = ["retry_now"]

    @admin.display(description="text")
    def text(self, obj: OutboxEmail) -> str:
        body = obj.readable_body
        if body is None:
            return "(holds a one-time link for its recipient: shown once sent, link removed)"
        return body or "(text no longer kept: cleared RETENTION_EMAIL_BODY_DAYS after sending)"

    @admin.action(description="Send again now (emails that were given up on)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[OutboxEmail]) -> None:
        count = sum(outbox_retry(email=email) for email in queryset)
        self.message_user(request, f"{count} email(s) queued again.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """The list says when the mail server cannot be reached: since when, why, and how
        much mail waits for it (the emails stay pending, their attempts unused)."""
        outage = mail_server_outage()
        waiting = (
            OutboxEmail.objects.filter(
                status__in=[OutboxEmail.Status.PENDING, OutboxEmail.Status.SENDING]
            ).count()
            if outage
            else 0
        )
        context = {**(extra_context or {}), "mail_server_outage": outage, "mail_waiting": waiting}
        return super().changelist_view(request, extra_context=context)

    # --- the local mail viewer (demo mode only) ------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        viewer = [
            path(
                "mail/",
                self.admin_site.admin_view(self.mail_viewer),
                name="notifications_demo_mail",
            ),
            path(
                "mail/<int:pk>/",
                self.admin_site.admin_view(self.mail_viewer_detail),
                name="notifications_demo_mail_detail",
            ),
        ]
        return viewer + super().get_urls()

    def _demo_only(self, request: HttpRequest) -> None:
        """The viewer exists in demo mode only (elsewhere its pages are 404s), and only
        for staff allowed to see the outbox: its copies hold live one-time links."""
        if not settings.DEMO_MODE:
            raise Http404("No such page.")
        if not self.has_view_permission(request):
            raise PermissionDenied("Seeing emails needs the permission to view the outbox.")

    @method_decorator_never_cache
    def mail_viewer(self, request: HttpRequest) -> HttpResponse:
        """Every email of the outbox, newest first: subject, to, kind, status, time."""
        self._demo_only(request)
        emails = OutboxEmail.objects.defer("body_text", "body_after_send").order_by(
            "-created_at", "-pk"
        )
        page = Paginator(emails, 50).get_page(request.GET.get("page"))
        kept = {m.outbox_id for m in demo_mail_list()}
        context = {
            **self.admin_site.each_context(request),
            "title": "Local mail viewer",
            "opts": self.model._meta,
            "page_obj": page,
            "kept": kept,
            "keep_hours": settings.DEMO_MAIL_KEEP_HOURS,
        }
        return TemplateResponse(request, "admin/notifications/demo_mail_list.html", context)

    @method_decorator_never_cache
    def mail_viewer_detail(self, request: HttpRequest, pk: int) -> HttpResponse:
        """One email: the copy kept as sent (its links work: demo mode), else the
        outbox's text (a one-time link removed once sent, none shown before)."""
        self._demo_only(request)
        email = get_object_or_404(OutboxEmail, pk=pk)
        copy = demo_mail_for_outbox(email.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": email.subject,
            "opts": self.model._meta,
            "email": email,
            "copy": copy,
            "body": copy.body if copy else self.text(email),
            "keep_hours": settings.DEMO_MAIL_KEEP_HOURS,
        }
        return TemplateResponse(request, "admin/notifications/demo_mail_detail.html", context)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
