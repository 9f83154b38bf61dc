from __future__ import annotations

import time
from typing import Any, TypeVar

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.forms import Form
from django.forms.utils import ErrorDict
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse_lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from clientarea.audit.services import audit_record, client_ip
from clientarea.core.validators import time_zone_names
from clientarea.security import login_throttle
from clientarea.security.services import password_set
from clientarea.security.throttle import (
    THROTTLED_MESSAGE,
    throttle_blocked,
    throttle_clear,
    throttle_consume,
    throttle_fail,
)
from clientarea.security.twofactor import two_factor_verify, user_has_two_factor

from . import services
from .forms import (
    AccountProfileForm,
    EmailAuthenticationForm,
    PasswordConfirmForm,
    QueuedPasswordResetForm,
    SelectAccountForm,
    TwoFactorTokenForm,
    UserProfileForm,
)
from .middleware import SESSION_LOST_ACCOUNT_KEY, account_switch
from .models import User, normalize_email
from .permissions import Perm
from .policy import (
    AccountRequest,
    UserRequest,
    access_for,
    accounts_for,
    login_only,
    public,
    requires,
)
from .reauth import mark_recent_auth
from .selectors import lost_memberships_of

LOGIN_PENDING_KEY = "login_pending"
LOGIN_PENDING_SECONDS = 300


def _is_local_path(request: HttpRequest, candidate: str) -> bool:
    """A path on this site ("/billing/"), never a bare word (which redirect() would take
    for a view name) nor another host ("//evil.example", "/\\evil.example")."""
    return (
        candidate.startswith("/")
        and not candidate.startswith(("//", "/\\"))
        and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        )
    )


def _safe_next(request: HttpRequest, candidate: str) -> str:
    if candidate and _is_local_path(request, candidate):
        return candidate
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def _pending_user(request: HttpRequest) -> tuple[User, dict[str, Any]] | None:
    pending = request.session.get(LOGIN_PENDING_KEY)
    if not isinstance(pending, dict):
        return None
    if not 0 <= time.time() - int(pending.get("at", 0)) <= LOGIN_PENDING_SECONDS:
        request.session.pop(LOGIN_PENDING_KEY, None)
        return None
    user = User.objects.filter(pk=int(pending.get("uid") or 0), is_active=True).first()
    return (user, pending) if user is not None else None


def _adopt_browser_zone(user: User, zone: Any) -> None:
    """At the first login, the browser's time zone (sent by the login page's script)
    becomes the person's, if zoneinfo knows it; afterwards only Profile changes it."""
    if user.last_login is not None or not isinstance(zone, str) or zone == user.time_zone:
        return
    if zone in time_zone_names():
        user.time_zone = zone
        user.save(update_fields=["time_zone"])


F = TypeVar("F", bound=Form)


def _refused(form: F, message: str = THROTTLED_MESSAGE) -> F:
    """An unbound form that shows `message`: the throttled answer, nothing checked."""
    form.cleaned_data = {}
    setattr(form, "_errors", ErrorDict())  # noqa: B010 - not in the form stubs
    form.add_error(None, message)
    return form


@public
@require_http_methods(["GET", "POST"])
def login(request: HttpRequest) -> HttpResponse:
    """Two-step login: email and password, then (for users who have it) a TOTP or
    recovery code. Both steps are throttled so that nobody can lock a person out: per
    (email, address) and per device, with a far higher per-email ceiling that spares the
    browsers the person has logged in from (security.login_throttle). Answers are the same
    whether the email exists or not (ASVS 6.1.1, 6.3.1, 6.3.8)."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if request.user.is_authenticated:
        return HttpResponseRedirect(_safe_next(request, next_url))
    if request.method == "GET" and "restart" in request.GET:
        request.session.pop(LOGIN_PENDING_KEY, None)
    pending = _pending_user(request)
    if pending is not None and (request.method == "GET" or "token" in request.POST):
        user, data = pending
        token_form = TwoFactorTokenForm(request.POST or None)
        status = 200
        if request.method == "POST" and token_form.is_valid():
            attempt = login_throttle.login_attempt(request, email=user.email, user=user)
            if not login_throttle.code_allowed(attempt, user=user):
                token_form.add_error(None, THROTTLED_MESSAGE)
                status = 429
            else:
                method = two_factor_verify(user=user, token=token_form.cleaned_data["token"])
                if method is not None:
                    request.session.pop(LOGIN_PENDING_KEY, None)
                    _adopt_browser_zone(user, data.get("zone"))
                    auth_login(request, user, backend=data["backend"])
                    if method == "recovery":
                        messages.warning(
                            request,
                            "You logged in with a recovery code. It cannot be used again.",
                        )
                    response = HttpResponseRedirect(_safe_next(request, data.get("next", "")))
                    login_throttle.login_succeeded(attempt, user=user, response=response)
                    return response
                audit_record(
                    action="user.two_factor_failed",
                    target=user,
                    target_label=user.email,
                    request=request,
                )
                login_throttle.code_failed(attempt, user=user, request=request)
                token_form.add_error("token", "That code is not right, or was already used.")
        return render(
            request, "accounts/login_two_factor.html", {"form": token_form}, status=status
        )

    form = EmailAuthenticationForm(request, data=request.POST or None)
    status = 200
    if request.method == "POST":
        email = normalize_email(str(request.POST.get("username", "")))[:254]
        attempt = login_throttle.login_attempt(request, email=email)
        if not login_throttle.login_allowed(attempt):
            # The same answer for known and unknown emails.
            form = _refused(EmailAuthenticationForm(request, initial={"username": email}))
            status = 429
        elif form.is_valid():
            user = form.get_user()
            browser_zone = str(request.POST.get("browser_time_zone", ""))[:64]
            if user_has_two_factor(user):
                request.session[LOGIN_PENDING_KEY] = {
                    "uid": user.pk,
                    "at": int(time.time()),
                    "backend": getattr(user, "backend", settings.AUTHENTICATION_BACKENDS[0]),
                    "next": next_url,
                    "zone": browser_zone,
                }
                return redirect("accounts:login")
            _adopt_browser_zone(user, browser_zone)
            auth_login(request, user)
            response = HttpResponseRedirect(_safe_next(request, next_url))
            login_throttle.login_succeeded(attempt, user=user, response=response)
            return response
        else:
            login_throttle.login_failed(attempt, request=request)
    return render(request, "accounts/login.html", {"form": form, "next": next_url}, status=status)


logout = public(auth_views.LogoutView.as_view())


class ThrottledPasswordResetView(auth_views.PasswordResetView):
    """Reset requests are limited per IP (a visible 429) and per email address (silently:
    the page says the same whether or not a link was sent; ASVS 6.3.8)."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not throttle_consume(scope="reset-ip", key=client_ip(request)):
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, THROTTLED_MESSAGE)
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: Any) -> HttpResponse:
        email = normalize_email(form.cleaned_data["email"])
        if not throttle_consume(scope="reset-email", key=email):
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


class ThrottledPasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Invalid reset links count against the IP; the new password goes through the
    security service (ends every session, audits, tells the user)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        ip = client_ip(request)
        if throttle_blocked(scope="token-ip", key=ip):
            return render(
                request,
                "accounts/password_reset_confirm.html",
                {"validlink": False, "throttled": True},
                status=429,
            )
        response = super().dispatch(request, *args, **kwargs)
        if not getattr(self, "validlink", True):
            throttle_fail(scope="token-ip", key=ip)
        return response

    def form_valid(self, form: Any) -> HttpResponse:
        password_set(
            user=form.user,
            password=form.cleaned_data["new_password1"],
            request=self.request,
            via="reset",
        )
        del self.request.session[auth_views.INTERNAL_RESET_SESSION_TOKEN]
        response = HttpResponseRedirect(self.get_success_url())
        # The reset link proved the mailbox: this browser now counts as the person's own,
        # so a per-email login lockout by strangers does not keep them out of it.
        login_throttle.device_cookie_set(response, user=form.user)
        return response


password_reset = public(
    ThrottledPasswordResetView.as_view(
        template_name="accounts/password_reset.html",
        form_class=QueuedPasswordResetForm,
        success_url=reverse_lazy("accounts:password_reset_done"),
    )
)
password_reset_done = public(
    auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html")
)
password_reset_confirm = public(
    ThrottledPasswordResetConfirmView.as_view(
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
    next_url = str(request.POST.get("next") or request.GET.get("next") or "")
    if request.method == "POST":
        form = SelectAccountForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose one of your accounts.")
            return redirect("accounts:select_account")
        chosen = next((a for a in accounts if a.pk == form.cleaned_data["account"]), None)
        access = access_for(request.user, chosen.pk) if chosen is not None else None
        if access is None:
            raise Http404("No such account.")
        account_switch(request, access, via="switcher")
        # The page the person asked for before choosing (same host only), else Dashboard.
        return HttpResponseRedirect(_safe_next(request, next_url))
    current = request.access.account.pk if request.access else None
    # With no account left, say which access ended and how to get it back.
    lost = [] if accounts else lost_memberships_of(request.user)
    return render(
        request,
        "accounts/select_account.html",
        {"accounts": accounts, "current_id": current, "lost": lost, "next": next_url},
    )


@login_only
def access_removed(request: UserRequest) -> HttpResponse:
    account_id = request.session.get(SESSION_LOST_ACCOUNT_KEY)
    lost = lost_memberships_of(request.user, account_id) if isinstance(account_id, int) else []
    return render(request, "accounts/access_removed.html", {"lost": lost})


@login_only
@require_http_methods(["GET", "POST"])
def profile(request: UserRequest) -> HttpResponse:
    user = request.user
    # Bind to a copy: validating fills the form's instance, so with `user` itself the
    # service would see no change and save nothing (and a failed validation would leave
    # half-changed values on request.user).
    form = UserProfileForm(request.POST or None, instance=User.objects.get(pk=user.pk))
    if request.method == "POST" and form.is_valid():
        services.user_update_profile(
            user=user,
            first_name=form.cleaned_data["first_name"],
            last_name=form.cleaned_data["last_name"],
            time_zone=form.cleaned_data["time_zone"] or None,
            request=request,
        )
        messages.success(request, "Your profile was saved.")
        return redirect("accounts:profile")
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
            access=request.access,
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
    if not _is_local_path(request, next_url):
        next_url = "/"
    form = PasswordConfirmForm(request.user, request.POST or None)
    if request.method == "POST":
        # Guessing the password here is throttled like the login (ASVS 6.3.1).
        if throttle_blocked(scope="confirm-user", key=request.user.pk):
            form = _refused(PasswordConfirmForm(request.user))
            context = {"form": form, "next": next_url}
            return render(request, "accounts/confirm_password.html", context, status=429)
        if form.is_valid():
            throttle_clear(scope="confirm-user", key=request.user.pk)
            mark_recent_auth(request)
            return HttpResponseRedirect(next_url)
        throttle_fail(scope="confirm-user", key=request.user.pk)
    return render(request, "accounts/confirm_password.html", {"form": form, "next": next_url})
