from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from . import services
from .forms import (
    AccountProfileForm,
    EmailAuthenticationForm,
    PasswordConfirmForm,
    QueuedPasswordResetForm,
    SelectAccountForm,
    UserProfileForm,
)
from .middleware import select_account as remember_account
from .permissions import Perm
from .policy import AccountRequest, UserRequest, accounts_for, login_only, public, requires
from .reauth import mark_recent_auth

login = public(
    auth_views.LoginView.as_view(
        template_name="accounts/login.html",
        authentication_form=EmailAuthenticationForm,
        redirect_authenticated_user=True,
    )
)
logout = public(auth_views.LogoutView.as_view())
password_reset = public(
    auth_views.PasswordResetView.as_view(
        template_name="accounts/password_reset.html",
        form_class=QueuedPasswordResetForm,
        success_url=reverse_lazy("accounts:password_reset_done"),
    )
)
password_reset_done = public(
    auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html")
)
password_reset_confirm = public(
    auth_views.PasswordResetConfirmView.as_view(
        template_name="accounts/password_reset_confirm.html",
        success_url=reverse_lazy("accounts:password_reset_complete"),
    )
)
password_reset_complete = public(
    auth_views.PasswordResetCompleteView.as_view(
        template_name="accounts/password_reset_complete.html"
    )
)


@login_only
@require_http_methods(["GET", "POST"])
def select_account(request: UserRequest) -> HttpResponse:
    accounts = list(accounts_for(request.user))
    if request.method == "POST":
        form = SelectAccountForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose one of your accounts.")
            return redirect("accounts:select_account")
        chosen = next((a for a in accounts if a.pk == form.cleaned_data["account"]), None)
        if chosen is None:
            raise Http404("No such account.")
        remember_account(request, chosen.pk)
        messages.success(request, f"You are now working in {chosen.display_name}.")
        return redirect("core:dashboard")
    current = request.access.account.pk if request.access else None
    return render(
        request, "accounts/select_account.html", {"accounts": accounts, "current_id": current}
    )


@login_only
def access_removed(request: UserRequest) -> HttpResponse:
    return render(request, "accounts/access_removed.html", status=403)


@login_only
@require_http_methods(["GET", "POST"])
def profile(request: UserRequest) -> HttpResponse:
    user = request.user
    form = UserProfileForm(request.POST or None, instance=user)
    if request.method == "POST" and form.is_valid():
        services.user_update_profile(
            user=user,
            first_name=form.cleaned_data["first_name"],
            last_name=form.cleaned_data["last_name"],
            request=request,
        )
        messages.success(request, "Your profile was saved.")
        return redirect("accounts:profile")
    if request.method == "POST":
        user.refresh_from_db()
    return render(request, "accounts/profile.html", {"form": form})


@requires(Perm.PROFILE)
@require_http_methods(["GET", "POST"])
def account_profile(request: AccountRequest) -> HttpResponse:
    account = request.access.account
    # Bind to a copy so a failed validation never leaves half-changed values around.
    form = AccountProfileForm(
        request.POST or None, instance=type(account).objects.get(pk=account.pk)
    )
    if request.method == "POST" and form.is_valid():
        services.account_update_profile(
            account=account,
            actor=request.user,
            data=form.cleaned_data,
            request=request,
        )
        messages.success(request, "The account details were saved.")
        return redirect("accounts:account_profile")
    return render(request, "accounts/account_profile.html", {"form": form})


@login_only
@require_http_methods(["GET", "POST"])
def confirm_password(request: UserRequest) -> HttpResponse:
    """Ask for the password again before a sensitive action (see reauth.py)."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    form = PasswordConfirmForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        mark_recent_auth(request)
        return redirect(next_url)
    return render(request, "accounts/confirm_password.html", {"form": form, "next": next_url})
