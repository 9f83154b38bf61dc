"""Emails you receive: the owner chooses which kinds of the account's email they get."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .owner_emails import (
    ALWAYS_SENT,
    OWNER_CHOOSABLE_KINDS,
    OwnerEmailError,
    OwnerEmailsForm,
    owner_email_kinds_set,
    owner_kinds_off,
)
from .policy import AccountRequest, owner_only


@owner_only
@require_http_methods(["GET", "POST"])
def owner_emails(request: AccountRequest) -> HttpResponse:
    account = request.access.account
    off = owner_kinds_off(account)
    form = OwnerEmailsForm(
        request.POST or None,
        initial={"kinds": [k for k in OWNER_CHOOSABLE_KINDS if k not in off]},
    )
    if request.method == "POST" and form.is_valid():
        try:
            owner_email_kinds_set(
                account=account,
                actor=request.user,
                kinds=form.cleaned_data["kinds"],
                request=request,
            )
        except OwnerEmailError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Your email choices were saved.")
            return redirect("accounts:owner_emails")
    return render(request, "accounts/owner_emails.html", {"form": form, "always_sent": ALWAYS_SENT})
