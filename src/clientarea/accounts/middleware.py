"""Resolve the current account for each request and enforce the views' access rules."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import UTC as datetime_utc
from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode

from clientarea.audit.services import audit_record
from clientarea.security.services import (
    TWO_FACTOR_NAMES,
    account_requires_two_factor,
    two_factor_gate_fields,
    two_factor_missing,
)
from clientarea.security.sessions import (
    SESSION_STATE_NAMES,
    session_check,
    session_digest,
    session_note_account,
    session_state_fields,
    session_state_read,
)
from clientarea.security.twofactor import user_has_two_factor

from .links import account_reaching
from .policy import (
    Access,
    NotInAccount,
    RuleKind,
    UserRequest,
    access_for,
    access_query,
    access_with,
    accounts_for,
    rule_of,
)

SESSION_ACCOUNT_KEY = "current_account_id"
# The account whose access ended under this session, for the Access removed page.
SESSION_LOST_ACCOUNT_KEY = "lost_account_id"
SESSION_END_MESSAGES = {
    "idle": "You were logged out after a period of inactivity. Please log in again.",
    "lifetime": "Your session reached its maximum length. Please log in again.",
}


# The hidden field every client-area form carries: the account it was shown for.
ACCOUNT_PIN_FIELD = "_account"


def account_pin_field(access: Access | None) -> str:
    if access is None:
        return ""
    return format_html(
        '<input type="hidden" name="{}" value="{}">', ACCOUNT_PIN_FIELD, access.account.pk
    )


def _pinned_elsewhere(request: HttpRequest, access: Access) -> bool:
    """A form shown for one account, posted after the session moved to another (Switch
    Account, or a link into another account, in another tab)."""
    if request.method != "POST":
        return False
    pinned = request.POST.get(ACCOUNT_PIN_FIELD)
    return pinned is not None and pinned != str(access.account.pk)


def select_account(request: HttpRequest, account_id: int) -> None:
    request.session[SESSION_ACCOUNT_KEY] = account_id
    session_note_account(request, account_id)  # for Revoke Access (security.sessions)


def account_switch(request: HttpRequest, access: Access, *, via: str) -> None:
    """The person works in `access`'s account from now on: chosen in Switch Account
    (`via="switcher"`) or reached by a link into it (`via="link"`, see links.py). Both
    are recorded the same way: the session's account, and an audit event."""
    select_account(request, access.account.pk)
    audit_record(
        action="account.switched",
        actor=access.user,
        account=access.account,
        target_label=request.path[:300] if via == "link" else "",
        changes={"via": via},
        request=request,
    )
    messages.success(request, f"You are now working in {access.account.display_name}.")


def _select_account_url(request: HttpRequest) -> str:
    """Switch Account, with the page asked for as `next` (a GET of any page but the
    dashboard), so that the person lands on it after choosing."""
    url = reverse("accounts:select_account")
    path = request.get_full_path()
    if request.method in ("GET", "HEAD") and path != reverse("core:dashboard"):
        url += "?" + urlencode({"next": path})
    return url


def _two_factor_missing(request: UserRequest, access: Access) -> bool:
    """Does `access`'s account require two-factor that the person has off? Read with the
    request's access when it is of that account; asked anew for an account reached by a
    link (``account_reaching``)."""
    read = request.two_factor_read
    if read is not None and read[0] == access.account.pk:
        return read[1]
    return account_requires_two_factor(access.account.pk) and not user_has_two_factor(request.user)


# A page's one access query: the access, the tracked session's state and the account's
# two-factor rule, by the person's and the account's ids, the time and the session's digest.
PAGE_ACCESS = access_query(
    also=lambda user_id, account_id, now, session: {
        **session_state_fields(session),
        **two_factor_gate_fields(user_id, account_id),
    },
    also_names=(*SESSION_STATE_NAMES, *TWO_FACTOR_NAMES),
    session=str,
)


class AccessMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: UserRequest) -> HttpResponse:
        request.access = None
        request.access_lost = False
        request.two_factor_read = None
        access: Access | None = None
        account_id: Any = None
        if request.user.is_authenticated:
            account_id = request.session.get(SESSION_ACCOUNT_KEY)
            # One query, on every request and never cached: the access (a revoked,
            # expired or narrowed membership stops working at once, on every device,
            # whatever the session remembers), the tracked session's state and the
            # account's two-factor rule.
            digest = session_digest(request)
            access, also = access_with(request.user, account_id, query=PAGE_ACCESS, session=digest)
            if also is not None:
                if digest:  # (no tracking token: nothing of a session was looked up)
                    session_state_read(request, also)
                # (`also` is read only when the account's row was: its id is an id.)
                request.two_factor_read = (int(account_id), two_factor_missing(also))
            # Ended, idle or too old sessions stop here (ASVS 7.3.1, 7.3.2, 7.4.x).
            ended = session_check(request)
            if ended in SESSION_END_MESSAGES:
                messages.info(request, SESSION_END_MESSAGES[ended])
        user = request.user
        if user.is_authenticated and user.is_active:
            if account_id is not None and access is None:
                del request.session[SESSION_ACCOUNT_KEY]
                request.session[SESSION_LOST_ACCOUNT_KEY] = account_id
                request.access_lost = True
            if access is None and account_id is None:
                only = list(accounts_for(user).values_list("pk", flat=True)[:2])
                if len(only) == 1:
                    select_account(request, only[0])
                    access = access_for(user, only[0])
            request.access = access
        # Every time on the page in the person's own zone (Profile); UTC for visitors.
        zone = getattr(user, "time_zone", "") if user.is_authenticated else ""
        try:
            timezone.activate(zoneinfo.ZoneInfo(zone) if zone else datetime_utc)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.activate(datetime_utc)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()

    def process_view(
        self, request: UserRequest, view_func: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        match = request.resolver_match
        if match is not None and match.app_name == "admin":
            return None  # the back office has its own staff-only checks
        if getattr(view_func, "__module__", "").startswith(("django.views.static",)):
            return None
        rule = rule_of(view_func)
        if rule is None:
            # Deny by default: a view that declares nothing is never served.
            raise PermissionDenied("This page declares no access rule.")
        if rule.kind is RuleKind.PUBLIC:
            return None
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not rule.needs_account:
            return None
        access: Access | None = request.access
        if access is None and request.access_lost:
            return redirect("accounts:access_removed")
        if access is None or not access.allows(rule):
            # A link to an object of another of the person's accounts: open it there.
            found = account_reaching(request, rule)
            if found is not None:
                account_switch(request, found, via="link")
                request.access = access = found
        if access is None:
            return redirect(_select_account_url(request))
        if _pinned_elsewhere(request, access):
            messages.error(
                request,
                f"That form was for another account; you are now working in "
                f"{access.account.display_name}. Nothing was saved: check the page and "
                "submit it again if it is meant for this account.",
            )
            return redirect(request.path)
        if not access.allows(rule):
            audit_record(
                action="access.refused",
                actor=request.user,
                account=access.account,
                target_label=request.path[:300],
                changes={"rule": rule.describe()},
                request=request,
            )
            raise PermissionDenied("You do not have permission to do this on this account.")
        if _two_factor_missing(request, access):
            # The owner requires two-factor on this account (ASVS 6.3.3).
            messages.warning(
                request,
                f"{access.account.display_name} requires two-factor authentication. "
                "Set it up to continue.",
            )
            return redirect("security:two_factor_setup")
        return None

    def process_exception(self, request: UserRequest, exception: Exception) -> HttpResponse | None:
        """The page's object is not the current account's: if it is one of another account
        of the person's, reached by their access there, switch and show it (links.py).
        Otherwise the 404 stands, the same as for an object of anyone else's."""
        if not isinstance(exception, NotInAccount) or request.access is None:
            return None
        match = request.resolver_match
        rule = rule_of(match.func) if match is not None else None
        if match is None or rule is None or not rule.needs_account:
            return None
        found = account_reaching(request, rule, exception)
        if found is None:
            return None
        account_switch(request, found, via="link")
        request.access = found
        response: HttpResponse = match.func(request, *match.args, **match.kwargs)
        return response
