from typing import Any

from django.conf import settings
from django.http import HttpRequest

from clientarea.accounts.middleware import account_pin_field
from clientarea.accounts.policy import accounts_for

from .registry import NAV_ITEMS, NavItem


def site(request: HttpRequest) -> dict[str, Any]:
    access = getattr(request, "access", None)
    nav = []
    if access is not None:
        nav = [i for i in NAV_ITEMS if i.permission is None or access.has(i.permission)]
    current, exact = _nav_current(request, nav)
    return {
        "site_name": settings.SITE_NAME,
        "access": access,
        # The menu's and pages' permission answers, built once per request (access.can
        # builds the whole dict anew each time a template reads it).
        "can": access.can if access is not None else {},
        "nav_items": nav,
        # The menu entry of the page shown (aria-current): "page" on the entry's own page,
        # "true" on a page inside its section (an invoice under Billing).
        "nav_current": current,
        "nav_current_kind": "page" if exact else "true",
        # Switch Account shows only to a person with more than one account (one query,
        # made when the menu asks).
        "several_accounts": lambda: _has_several_accounts(request),
        "demo_mode": settings.DEMO_MODE,
        # In every form after the CSRF token: the account the form was shown for, so a
        # form left open while the session moved to another account saves nothing there.
        "account_pin": account_pin_field(access),
    }


DASHBOARD = "core:dashboard"


def _nav_current(request: HttpRequest, nav: list[NavItem]) -> tuple[str, bool]:
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "", False
    if match.view_name == DASHBOARD:
        return DASHBOARD, True
    for item in nav:
        if item.url_name == match.view_name:
            return item.url_name, True
    for item in nav:
        if match.namespace and item.url_name.split(":", 1)[0] == match.namespace:
            return item.url_name, False
    return "", False


def _has_several_accounts(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    # The ids of at most two, unordered: the cheapest form of this query to build (its
    # building, not the database, is most of its cost).
    return len(accounts_for(user).order_by().values_list("pk", flat=True)[:2]) > 1
