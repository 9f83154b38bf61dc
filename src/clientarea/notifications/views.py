"""The account's email history (permission: emails)."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import AccountRequest, account_object_or_404, requires

from .models import OutboxEmail

PAGE_SIZE = 25


@requires(Perm.EMAILS)
@require_http_methods(["GET"])
def history(request: AccountRequest) -> HttpResponse:
    emails = OutboxEmail.objects.filter(account=request.access.account).order_by(
        "-created_at", "-pk"
    )
    page = Paginator(emails.defer("body_text", "body_after_send"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "notifications/history.html", {"page_obj": page})


@requires(Perm.EMAILS)
@require_http_methods(["GET"])
def history_detail(request: AccountRequest, email_id: int) -> HttpResponse:
    email = account_object_or_404(OutboxEmail.objects.all(), request.access.account, pk=email_id)
    # Personal emails (invitations, access changes) may hold a link meant for one person
    # only: their text never leaves the server, whatever the template does.
    body = None if email.is_personal else email.body_text
    return render(request, "notifications/history_detail.html", {"email": email, "body": body})
