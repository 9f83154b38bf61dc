"""Transfer Ownership and Close Account (owner only), the transfer link, and deleting
one's own login.

The transfer link (``/ownership/<token>/``) keeps its token in the session and redirects
to ``/ownership/accept/`` (``clientarea.security.tokenlinks``), like an invitation."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clientarea.audit.services import client_ip
from clientarea.security.throttle import (
    throttle_blocked,
    throttle_clear,
    throttle_fail,
)
from clientarea.security.tokenlinks import token_forget, token_from_session, token_link_redirect

from . import ownership, services
from .closing import closure_items
from .forms import PasswordConfirmForm
from .forms_ownership import CloseAccountForm, TransferForm
from .forms_users import AcceptNewUserForm
from .middleware import select_account
from .models import OwnershipTransfer, User, normalize_email
from .policy import (
    AccountRequest,
    UserRequest,
    account_object_or_404,
    login_only,
    owner_only,
    public,
)
from .reauth import recent_auth_required

LOGIN_BACKEND = "django.contrib.auth.backends.ModelBackend"
TOKEN_KIND = "ownership"


@owner_only
@recent_auth_required
@require_http_methods(["GET", "POST"])
def transfer(request: AccountRequest) -> HttpResponse:
    """Transfer Ownership: choose the person; or see (and cancel) the pending offer."""
    account = request.access.account
    pending = ownership.transfer_pending_for(account)
    if pending is not None and not pending.is_open():
        pending = None  # past its 72 hours: the worker records the expiry
    form = TransferForm(account, request.POST or None)
    if request.method == "POST" and pending is None and form.is_valid():
        try:
            ownership.ownership_transfer_start(
                account=account,
                actor=request.user,
                to_email=form.to_email,
                former_owner_stays=form.cleaned_data["then"] == "stay",
                keep_payment_methods=form.cleaned_data["keep_payment_methods"],
                request=request,
            )
        except (ownership.OwnershipError, services.AccessError) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                f"We sent {form.to_email} a link to accept the account. It works for "
                f"{ownership.transfer_valid_hours()} hours; you can cancel it until then.",
            )
            return redirect("accounts:ownership_transfer")
    return render(
        request,
        "accounts/ownership/transfer.html",
        {
            "form": form,
            "pending": pending,
            "closing": account.close_requested_at is not None,
            "valid_hours": ownership.transfer_valid_hours(),
        },
    )


@owner_only
@require_POST
def transfer_cancel(request: AccountRequest, transfer_id: int) -> HttpResponse:
    found = account_object_or_404(
        OwnershipTransfer.objects.all(), request.access.account, pk=transfer_id
    )
    try:
        ownership.ownership_transfer_cancel(transfer=found, actor=request.user, request=request)
    except (ownership.OwnershipError, services.AccessError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"The transfer to {found.to_email} was cancelled.")
    return redirect("accounts:ownership_transfer")


@public
@require_GET
def transfer_link(request: HttpRequest, token: str) -> HttpResponse:
    """The link of the email: the token goes into the session, the browser to the page."""
    if throttle_blocked(scope="token-ip", key=client_ip(request)):
        return render(request, "accounts/ownership/unusable.html", {}, status=429)
    if ownership.transfer_for_token(token) is None:
        throttle_fail(scope="token-ip", key=client_ip(request))
    return token_link_redirect(
        request, kind=TOKEN_KIND, token=token, to="accounts:ownership_transfer_page"
    )


@public
@require_http_methods(["GET", "POST"])
def transfer_page(request: HttpRequest) -> HttpResponse:
    """The offer of the link last opened in this session."""
    token = token_from_session(request, kind=TOKEN_KIND)
    offer = ownership.transfer_for_token(token) if token else None
    if offer is None:
        return render(
            request, "accounts/ownership/unusable.html", {"reason": "unknown"}, status=404
        )
    reason = ownership.transfer_refusal(offer)
    if reason is not None:
        return render(request, "accounts/ownership/unusable.html", {"reason": reason}, status=410)
    assert token is not None
    context = {"offer": offer, "account": offer.account}
    user = request.user
    if user.is_authenticated:
        assert isinstance(user, User)
        if normalize_email(user.email) != offer.to_email:
            return render(request, "accounts/ownership/wrong_email.html", context, status=403)
        if request.method == "POST":
            return _accept(request, token, user, offer)
        return render(request, "accounts/ownership/accept.html", context)
    if User.objects.filter(email__iexact=offer.to_email).exists():
        return render(request, "accounts/ownership/login_first.html", context)
    form = AcceptNewUserForm(offer.to_email, request.POST or None)
    if request.method == "POST" and form.is_valid():
        if User.objects.filter(email__iexact=offer.to_email).exists():
            form.add_error(None, "You already have a login: log in with it to accept.")
        else:
            new_user = services.user_create(
                email=offer.to_email,
                password=form.cleaned_data["password1"],
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
            )
            auth_login(request, new_user, backend=LOGIN_BACKEND)
            return _accept(request, token, new_user, offer)
    return render(request, "accounts/ownership/new_user.html", {**context, "form": form})


def _accept(request: HttpRequest, token: str, user: User, offer: OwnershipTransfer) -> HttpResponse:
    try:
        ownership.ownership_transfer_accept(token=token, user=user, request=request)
    except ownership.OwnershipError as exc:
        # The link stays in the session (e.g. to come back once two-factor is on).
        messages.error(request, str(exc))
        return redirect("accounts:ownership_transfer_page")
    token_forget(request, kind=TOKEN_KIND)
    select_account(request, offer.account_id)
    messages.success(request, f"You are now the owner of {offer.account.display_name}.")
    return redirect("core:dashboard")


@owner_only
@recent_auth_required
@require_http_methods(["GET", "POST"])
def close(request: AccountRequest) -> HttpResponse:
    """Close Account: what closing does to each item; ask for it (or withdraw)."""
    account = request.access.account
    items = closure_items(account)
    blockers = [i for i in items if i.blocking]
    form = CloseAccountForm(request.user, request.POST or None)
    if request.method == "POST":
        try:
            if request.POST.get("action") == "withdraw":
                ownership.account_close_withdraw(
                    account=account, actor=request.user, request=request
                )
                messages.success(request, "Your request to close the account was withdrawn.")
                return redirect("accounts:account_close")
            # Guessing the password here is throttled like "Confirm your password".
            if throttle_blocked(scope="confirm-user", key=request.user.pk):
                form = CloseAccountForm(request.user)
                form.add_error(None, "Too many attempts; try again later.")
            elif not form.is_valid():
                throttle_fail(scope="confirm-user", key=request.user.pk)
            else:
                throttle_clear(scope="confirm-user", key=request.user.pk)
                ownership.account_close_request(
                    account=account, actor=request.user, request=request
                )
                messages.success(
                    request,
                    "We received your request to close the account. Our staff will confirm "
                    "it; until then you can withdraw it here.",
                )
                return redirect("accounts:account_close")
        except ownership.ClosureRefused as exc:
            blockers = exc.blockers
            form.add_error(None, str(exc))
        except (ownership.OwnershipError, services.AccessError) as exc:
            form.add_error(None, str(exc))
    account.refresh_from_db(fields=["close_requested_at"])
    return render(
        request,
        "accounts/ownership/close.html",
        {
            "form": form,
            "items": [i for i in items if not i.blocking],
            "blockers": blockers,
            "requested": account.close_requested_at,
            "retention_years": ownership.retention_years(),
        },
    )


@login_only
@require_http_methods(["GET", "POST"])
def delete_login(request: UserRequest) -> HttpResponse:
    """Delete My Login: only when the person owns no open account."""
    user = request.user
    owned = ownership.open_accounts_owned_by(user)
    form = PasswordConfirmForm(user, request.POST or None)
    if request.method == "POST":
        if throttle_blocked(scope="confirm-user", key=user.pk):
            form.add_error(None, "Too many attempts; try again later.")
        elif form.is_valid():
            throttle_clear(scope="confirm-user", key=user.pk)
            try:
                ownership.user_delete_own_login(
                    user=user, password=form.cleaned_data["password"], request=request
                )
            except ownership.OwnershipError as exc:
                form.add_error(None, str(exc))
            else:
                auth_logout(request)
                messages.success(request, "Your login was deleted.")
                return redirect("accounts:login")
        else:
            throttle_fail(scope="confirm-user", key=user.pk)
    return render(request, "accounts/ownership/delete_login.html", {"form": form, "owned": owned})
