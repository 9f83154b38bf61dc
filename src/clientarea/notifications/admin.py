from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from .models import OutboxEmail
from .services import outbox_retry

# The text of an email that still holds a one-time link (an invitation, a password reset,
# a contact confirmation: until it is sent) is never shown, not even to staff: whoever
# reads it could use the link. Nor is the worker's claim token.
HIDDEN = ("body_text", "body_after_send", "claim_token")
SHOWN = (*(f.name for f in OutboxEmail._meta.fields if f.name not in HIDDEN), "text")


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
        return body

    @admin.action(description="Send again now (emails that were given up on)")
    def retry_now(self, request: HttpRequest, queryset: QuerySet[OutboxEmail]) -> None:
        count = sum(outbox_retry(email=email) for email in queryset)
        self.message_user(request, f"{count} email(s) queued again.")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
