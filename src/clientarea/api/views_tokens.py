"""The API Tokens page (under Hello): anyone with access to the account makes tokens
for it; the owner sees and can revoke every token on the account, others their own."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from clientarea.accounts.policy import AccountRequest, account_member, account_object_or_404
from clientarea.accounts.reauth import recent_auth_required
from clientarea.accounts.scope import describe as scope_describe
from clientarea.accounts.scope import scope_label_map

from . import selectors, services
from .forms import TokenForm
from .models import ApiToken

PAGE_SIZE = 25


@account_member
@require_http_methods(["GET"])
def token_list(request: AccountRequest) -> HttpResponse:
    access = request.access
    page = Paginator(selectors.token_list_for(access=access), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    labels = scope_label_map(access.account) if any(t.scope for t in page.object_list) else {}
    rows = [
        {
            "token": t,
            "live": t.is_live(),
            "scope": scope_describe(t.scope_items, labels),
            "mine": t.created_by_id == request.user.pk,
        }
        for t in page.object_list
    ]
    return render(request, "api/tokens/list.html", {"page_obj": page, "rows": rows})


@account_member
@recent_auth_required
@require_http_methods(["GET", "POST"])
def token_create(request: AccountRequest) -> HttpResponse:
    access = request.access
    form = TokenForm(request.POST or None, access=access)
    if request.method == "POST" and form.is_valid():
        try:
            token, secret = services.token_create(
                account=access.account,
                actor=request.user,
                name=form.cleaned_data["name"],
                permission_codes=form.cleaned_data["permissions"],
                scope=form.scope,
                expires_at=form.expires_at,
                allowed_networks=form.cleaned_data["allowed_networks"],
                manages_users=form.manages_users,
                request=request,
            )
        except services.TokenError as exc:
            form.add_error(None, str(exc))
        else:
            # Shown in this one response and never again: not stored, not cached.
            response = render(
                request, "api/tokens/created.html", {"token": token, "secret": secret}
            )
            add_never_cache_headers(response)
            return response
    return render(request, "api/tokens/form.html", {"form": form})


@account_member
@require_POST
def token_revoke(request: AccountRequest, token_id: int) -> HttpResponse:
    token = account_object_or_404(
        ApiToken.objects.select_related("account"), request.access.account, pk=token_id
    )
    revoked = services.token_revoke(token=token, actor=request.user, request=request)
    messages.success(request, f"The token “{revoked.name}” was revoked: it no longer works.")
    return redirect("api_tokens:list")
