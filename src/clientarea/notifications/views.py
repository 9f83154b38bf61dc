"""The account's email history (permission: emails)."""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import AccountRequest, account_object_or_404, requires

from .selectors import email_history_for

PAGE_SIZE = 25


@requires(Perm.EMAILS)
@require_http_methods(["GET"])
def history(request: AccountRequest) -> HttpResponse:
    emails = email_history_for(request.access)
    page = Paginator(emails.defer("body_text", "body_after_send"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "notifications/history.html", {"page_obj": page})


@requires(Perm.EMAILS)
@require_http_methods(["GET"])
def history_detail(request: AccountRequest, email_id: int) -> HttpResponse:
    email = account_object_or_404(
        email_history_for(request.access), request.access.account, pk=email_id
    )
    # A one-time link still in a queued email never leaves the server, whoever asks.
    body = email.readable_body
    context = {
        "email": email,
        "body": body,
        # An empty text: cleared by the retention job (outbox_bodies_prune) after these days.
        "retention_days": settings.RETENTION_EMAIL_BODY_DAYS,
    }
    return render(request, "notifications/history_detail.html", context)
