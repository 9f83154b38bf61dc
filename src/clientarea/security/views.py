"""The Security page: two-factor, sessions, password and email (ASVS 6.x, 7.x)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clientarea.accounts.policy import AccountRequest, UserRequest, login_only, owner_only, public
from clientarea.accounts.reauth import recent_auth_required

from . import services
from .forms import (
    EmailChangeForm,
    RequireTwoFactorForm,
    SecurityPasswordChangeForm,
    TotpConfirmForm,
)
from .headers import no_store
from .models import TrackedSession
from .sessions import session_current, session_end_others, session_list_for
from .sessions import session_end as end_session
from .tokenlinks import token_forget, token_from_session, token_link_redirect
from .twofactor import (
    recovery_codes_left,
    totp_pending_device,
    totp_qr_data_uri,
    totp_secret_base32,
    user_has_two_factor,
)

PAGE_SIZE = 20


@login_only
def security_page(request: UserRequest) -> HttpResponse:
    user = request.user
    page = Paginator(session_list_for(user), PAGE_SIZE).get_page(request.GET.get("page"))
    current = session_current(request)
    access = request.access
    require_form = None
    if access is not None and access.is_owner:
        setting = services.account_security_for(access.account)
        require_form = RequireTwoFactorForm(
            initial={"required": bool(setting and setting.require_two_factor)}
        )
    return render(
        request,
        "security/security.html",
        {
            "has_two_factor": user_has_two_factor(user),
            "codes_left": recovery_codes_left(user),
            "page_obj": page,
            "current_session_id": current.pk if current else None,
            "require_form": require_form,
        },
    )


@login_only
@recent_auth_required
@no_store
@require_http_methods(["GET", "POST"])
def two_factor_setup(request: UserRequest) -> HttpResponse:
    user = request.user
    if user_has_two_factor(user):
        messages.info(request, "Two-factor authentication is already on.")
        return redirect("security:security")
    device = totp_pending_device(user)
    form = TotpConfirmForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            codes = services.two_factor_enable(
                user=user, device=device, token=form.cleaned_data["token"], request=request
            )
        except services.SecurityError as exc:
            form.add_error("token", str(exc))
            status = 400
        else:
            update_session_auth_hash(request, user)
            messages.success(request, "Two-factor authentication is on.")
            return render(request, "security/recovery_codes.html", {"codes": codes})
    context = {
        "form": form,
        "qr": totp_qr_data_uri(device),
        "secret": totp_secret_base32(device),
    }
    return render(request, "security/two_factor_setup.html", context, status=status)


@login_only
@recent_auth_required
@require_POST
def two_factor_disable(request: UserRequest) -> HttpResponse:
    services.two_factor_disable(user=request.user, request=request)
    messages.success(request, "Two-factor authentication is off. Your other sessions ended.")
    return redirect("security:security")


@login_only
@recent_auth_required
@no_store
@require_POST
def recovery_codes(request: UserRequest) -> HttpResponse:
    try:
        codes = services.recovery_codes_regenerate(user=request.user, request=request)
    except services.SecurityError as exc:
        messages.error(request, str(exc))
        return redirect("security:security")
    return render(request, "security/recovery_codes.html", {"codes": codes})


@login_only
@require_POST
def session_end(request: UserRequest, session_id: int) -> HttpResponse:
    # Only the user's own sessions: anyone else's id is a 404.
    session = TrackedSession.objects.filter(user=request.user, pk=session_id).active().first()
    if session is None:
        raise Http404("No such session.")
    end_session(
        session=session, reason=TrackedSession.EndReason.USER, actor=request.user, request=request
    )
    messages.success(request, "The session was ended.")
    return redirect("security:security")


@login_only
@require_POST
def sessions_end_others(request: UserRequest) -> HttpResponse:
    count = session_end_others(
        user=request.user, reason=TrackedSession.EndReason.USER, request=request
    )
    messages.success(request, f"{count} other session(s) ended.")
    return redirect("security:security")


@login_only
@recent_auth_required
@require_http_methods(["GET", "POST"])
def password_change(request: UserRequest) -> HttpResponse:
    form = SecurityPasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.password_set(
            user=request.user, password=form.cleaned_data["new_password1"], request=request
        )
        update_session_auth_hash(request, request.user)
        messages.success(request, "Your password was changed. Your other sessions ended.")
        return redirect("security:security")
    return render(request, "security/password_change.html", {"form": form})


@login_only
@recent_auth_required
@require_http_methods(["GET", "POST"])
def email_change(request: UserRequest) -> HttpResponse:
    form = EmailChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.email_change_request(
                user=request.user, new_email=form.cleaned_data["email"], request=request
            )
        except services.SecurityError as exc:
            form.add_error("email", str(exc))
        else:
            messages.success(
                request,
                "We sent a confirmation link to the new address. Your email changes when "
                "you open it.",
            )
            return redirect("security:security")
    return render(request, "security/email_change.html", {"form": form})


EMAIL_CHANGE_TOKEN_KIND = "email-change"


@public
@require_GET
def email_change_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: its token goes into the session and the browser on to the
    token-less confirmation page (``tokenlinks``)."""
    return token_link_redirect(
        request, kind=EMAIL_CHANGE_TOKEN_KIND, token=token, to="security:email_change_confirm_page"
    )


@public
@require_http_methods(["GET", "POST"])
def email_change_confirm_page(request: HttpRequest) -> HttpResponse:
    # GET only shows a button: mail scanners that open links change nothing.
    token = token_from_session(request, kind=EMAIL_CHANGE_TOKEN_KIND)
    data = services.email_change_token_read(token) if token else None
    if token is None or data is None:
        return render(request, "security/email_change_confirm.html", {"invalid": True}, status=400)
    if request.method == "POST":
        try:
            services.email_change_confirm(token=token, request=request)
        except services.SecurityError as exc:
            context = {"invalid": True, "error": str(exc)}
            return render(request, "security/email_change_confirm.html", context, status=400)
        token_forget(request, kind=EMAIL_CHANGE_TOKEN_KIND)
        messages.success(request, "Your email address was changed.")
        return redirect("security:security" if request.user.is_authenticated else "accounts:login")
    return render(request, "security/email_change_confirm.html", {"new_email": data.get("new")})


@owner_only
@recent_auth_required
@require_POST
def require_two_factor(request: AccountRequest) -> HttpResponse:
    form = RequireTwoFactorForm(request.POST)
    form.is_valid()
    required = bool(form.cleaned_data.get("required"))
    try:
        services.account_require_two_factor_set(
            account=request.access.account, actor=request.user, required=required, request=request
        )
    except services.SecurityError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            "Two-factor authentication is now required for every user of this account."
            if required
            else "Two-factor authentication is now optional on this account.",
        )
    return redirect("security:security")
