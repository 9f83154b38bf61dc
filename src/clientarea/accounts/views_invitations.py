"""Accepting an invitation.

The link in an invitation email (``/invitation/<token>/``) keeps its token in the session
and redirects at once to ``/invitation/accept/``, the page that shows the invitation and
receives the POST (``clientarea.security.tokenlinks``): the token is never in the address
bar, the history, a Referer or a later request line."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from clientarea.audit.services import client_ip
from clientarea.security.throttle import throttle_blocked, throttle_fail
from clientarea.security.tokenlinks import token_forget, token_from_session, token_link_redirect

from . import services
from .forms_users import AcceptNewUserForm
from .middleware import select_account
from .models import Invitation, User, normalize_email
from .policy import public

LOGIN_BACKEND = "django.contrib.auth.backends.ModelBackend"


def _unusable(request: HttpRequest, invitation: Invitation | None) -> HttpResponse | None:
    """The page for a link that cannot be used: it names the reason and nothing about the
    account."""
    if invitation is None:
        reason, status = "unknown", 404
    elif invitation.status == Invitation.Status.ACCEPTED:
        reason, status = "accepted", 410
    elif invitation.status == Invitation.Status.CANCELLED:
        reason, status = "cancelled", 410
    elif invitation.status == Invitation.Status.EXPIRED or not invitation.is_open():
        reason, status = "expired", 410
    else:
        return None
    return render(request, "accounts/invitations/unusable.html", {"reason": reason}, status=status)


TOKEN_KIND = "invitation"


@public
@require_GET
def invitation_link(request: HttpRequest, token: str) -> HttpResponse:
    """The link of the email: the token goes into the session, the browser to the page."""
    # Guessing invitation links is throttled per IP (ASVS 6.3.1).
    if throttle_blocked(scope="token-ip", key=client_ip(request)):
        return render(request, "accounts/invitations/unusable.html", {}, status=429)
    if services.invitation_for_token(token) is None:
        throttle_fail(scope="token-ip", key=client_ip(request))
    return token_link_redirect(request, kind=TOKEN_KIND, token=token, to="accounts:invitation_page")


@public
@require_http_methods(["GET", "POST"])
def invitation_page(request: HttpRequest) -> HttpResponse:
    """The invitation of the link last opened in this session: its refusal page if it
    cannot be used, else the form that accepts it."""
    token = token_from_session(request, kind=TOKEN_KIND)
    invitation = services.invitation_for_token(token) if token else None
    refusal = _unusable(request, invitation)
    if refusal is not None:
        return refusal
    assert invitation is not None and token  # _unusable answered for an unknown link
    context = {
        "invitation": invitation,
        "account": invitation.account,
        "labels": invitation.permission_labels,
        "all_permissions": invitation.has_all_permissions,
        **services.scope_email_context(invitation.account, invitation.scope_items),
    }
    user = request.user
    if user.is_authenticated:
        assert isinstance(user, User)
        if normalize_email(user.email) != invitation.email:
            return render(request, "accounts/invitations/wrong_email.html", status=403)
        if request.method == "POST":
            try:
                services.invitation_accept(token=token, user=user, request=request)
            except services.InvitationError as exc:
                messages.error(request, str(exc))
                return redirect("core:dashboard")
            token_forget(request, kind=TOKEN_KIND)
            return _joined(request, invitation)
        return render(request, "accounts/invitations/accept.html", context)

    if User.objects.filter(email__iexact=invitation.email).exists():
        # They already have a login: the ordinary login page (with whatever protection
        # it has) brings them back here to accept.
        return render(request, "accounts/invitations/login_first.html", context)

    form = AcceptNewUserForm(invitation.email, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            new_user, _ = services.invitation_accept_new_user(
                token=token,
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
                password=form.cleaned_data["password1"],
                request=request,
            )
        except services.InvitationError as exc:
            form.add_error(None, str(exc))
        else:
            auth_login(request, new_user, backend=LOGIN_BACKEND)
            token_forget(request, kind=TOKEN_KIND)
            return _joined(request, invitation)
    return render(request, "accounts/invitations/new_user.html", {**context, "form": form})


def _joined(request: HttpRequest, invitation: Invitation) -> HttpResponse:
    select_account(request, invitation.account_id)
    messages.success(
        request,
        f"Welcome! You now have access to {invitation.account.display_name}. "
        "It is in your Switch Account list too.",
    )
    return redirect("core:dashboard")
