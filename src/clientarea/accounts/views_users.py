"""User Management (owner only) and accepting an invitation."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from clientarea.security.throttle import THROTTLED_MESSAGE, throttle_consume
from clientarea.security.twofactor import users_with_two_factor

from . import permissions, selectors, services
from .forms_users import InviteForm, MembershipForm
from .models import Invitation, Membership
from .policy import AccountRequest, account_object_or_404, owner_only
from .reauth import recent_auth_required
from .scope import describe, scope_label_map

PAGE_SIZE = 25


@owner_only
@require_http_methods(["GET"])
def users(request: AccountRequest) -> HttpResponse:
    account = request.access.account
    page = Paginator(selectors.membership_list_for(account), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    invites = Paginator(selectors.invitation_pending_list_for(account), PAGE_SIZE).get_page(
        request.GET.get("invitations_page")
    )
    now = timezone.now()
    members = list(page.object_list)
    with_2fa = users_with_two_factor([account.owner_id, *(m.user_id for m in members)])
    # The names of the items these rows' scopes name: one query per kind, however many
    # rows name them (and however many items the account has).
    labels = scope_label_map(
        account, [m.scope_items for m in members] + [i.scope_items for i in invites.object_list]
    )
    rows = [
        {
            "membership": m,
            "two_factor": m.user_id in with_2fa,
            "status": m.status_label(now),
            "usable": m.is_usable(now),
            "labels": m.permission_labels,
            "all": permissions.is_all(m.permissions),
            "scope": describe(m.scope_items, labels),
        }
        for m in members
    ]
    invitation_rows = [
        {"invitation": i, "open": i.is_open(now), "scope": describe(i.scope_items, labels)}
        for i in invites.object_list
    ]
    return render(
        request,
        "accounts/users/list.html",
        {
            "page_obj": page,
            "rows": rows,
            "invites": invites,
            "invitation_rows": invitation_rows,
            "owner_two_factor": account.owner_id in with_2fa,
        },
    )


@owner_only
@recent_auth_required
@require_http_methods(["GET", "POST"])
def user_invite(request: AccountRequest) -> HttpResponse:
    account = request.access.account
    preset = permissions.ROLE_PRESETS.get(request.POST.get("preset", ""))
    if request.method == "POST" and preset:
        # "Start from a role" inside the form: tick the role's permissions and keep
        # everything else as entered (the address, the services and domains, the expiry).
        # Nothing is sent.
        data = request.POST.copy()
        data.setlist("permissions", sorted(permissions.expand(preset[1])))
        data["access"] = "all" if permissions.is_all(preset[1]) else "choose"
        form = InviteForm(data, account=account)
        form.is_valid()
        form.errors.clear()
    elif request.method == "POST":
        form = InviteForm(request.POST, account=account)
        if form.is_valid() and not throttle_consume(scope="invite-send", key=account.pk):
            form.add_error(None, THROTTLED_MESSAGE)  # invitation sending is rate-limited
        elif form.is_valid():
            try:
                invitation = services.invitation_create(
                    account=account,
                    access=request.access,
                    email=form.cleaned_data["email"],
                    permission_codes=form.permission_codes,
                    access_expires_at=form.access_expires_at,
                    scope=form.scope,
                    request=request,
                )
            except (services.InvitationError, services.AccessError) as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Invitation sent to {invitation.email}.")
                return redirect("accounts:users")
    else:
        role = permissions.ROLE_PRESETS.get(request.GET.get("role", ""))
        initial = InviteForm.initial_for(role[1]) if role else {}
        form = InviteForm(initial=initial, account=account)
    presets = [(key, label) for key, (label, _) in permissions.ROLE_PRESETS.items()]
    return render(request, "accounts/users/invite.html", {"form": form, "presets": presets})


@owner_only
@recent_auth_required
@require_http_methods(["GET", "POST"])
def user_edit(request: AccountRequest, membership_id: int) -> HttpResponse:
    membership = account_object_or_404(
        Membership.objects.select_related("user"), request.access.account, pk=membership_id
    )
    form = MembershipForm.for_membership(membership, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.membership_update(
                membership=membership,
                access=request.access,
                permission_codes=form.permission_codes,
                expires_at=form.access_expires_at,
                scope=form.scope,
                request=request,
            )
        except (services.AccessError, services.InvitationError) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"The permissions of {membership.user.email} were saved.")
            return redirect("accounts:users")
    scope = describe(membership.scope_items, scope_label_map(membership.account))
    return render(
        request,
        "accounts/users/edit.html",
        {"form": form, "membership": membership, "scope": scope},
    )


@owner_only
@require_http_methods(["GET", "POST"])
def user_revoke(request: AccountRequest, membership_id: int) -> HttpResponse:
    membership = account_object_or_404(
        Membership.objects.select_related("user"), request.access.account, pk=membership_id
    )
    if membership.status == Membership.Status.REVOKED:
        messages.info(request, f"{membership.user.email} no longer has access.")
        return redirect("accounts:users")
    if request.method == "POST":
        try:
            services.membership_revoke(
                membership=membership, access=request.access, request=request
            )
        except services.AccessError as exc:  # e.g. they accepted ownership meanwhile
            messages.error(request, str(exc))
            return redirect("accounts:users")
        messages.success(
            request, f"Access revoked: {membership.user.email} can no longer use this account."
        )
        return redirect("accounts:users")
    return render(request, "accounts/users/revoke.html", {"membership": membership})


@owner_only
@recent_auth_required
@require_POST
def invitation_resend(request: AccountRequest, invitation_id: int) -> HttpResponse:
    invitation = account_object_or_404(
        Invitation.objects.all(), request.access.account, pk=invitation_id
    )
    try:
        if not throttle_consume(scope="invite-send", key=request.access.account.pk):
            raise services.InvitationError(THROTTLED_MESSAGE)
        services.invitation_resend(invitation=invitation, access=request.access, request=request)
    except (services.InvitationError, services.AccessError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"A new invitation link was sent to {invitation.email}; the old one no longer works.",
        )
    return redirect("accounts:users")


@owner_only
@require_http_methods(["GET", "POST"])
def invitation_cancel(request: AccountRequest, invitation_id: int) -> HttpResponse:
    """GET asks for confirmation (as Revoke Access does); POST cancels."""
    invitation = account_object_or_404(
        Invitation.objects.all(), request.access.account, pk=invitation_id
    )
    if request.method == "GET":
        if invitation.status != Invitation.Status.PENDING:
            messages.info(request, f"The invitation of {invitation.email} is no longer pending.")
            return redirect("accounts:users")
        return render(request, "accounts/users/invitation_cancel.html", {"invitation": invitation})
    try:
        services.invitation_cancel(invitation=invitation, access=request.access, request=request)
    except (services.InvitationError, services.AccessError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"The invitation of {invitation.email} was cancelled.")
    return redirect("accounts:users")
