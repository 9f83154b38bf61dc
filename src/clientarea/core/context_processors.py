from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from clientarea.accounts.middleware import account_pin_field
from clientarea.accounts.models import Account, Membership

from .prepared import PreparedQuery
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
    return len(SELECTABLE.fetch(user_id=user.pk, now=timezone.now())) > 1


def _selectable_ids(user_id: int, now: datetime) -> QuerySet[Account, tuple[int]]:
    """The ids of at most two of policy.accounts_for(the user) at `now`: the accounts they
    own or hold a usable membership of, not closed (a test holds the two to the same)."""
    usable = Membership.objects.usable(now).filter(user_id=user_id).values("account_id")
    # United, as accounts_for does: `owner OR pk IN (...)` can use no index and read every
    # account (50 ms a page at 100,000 accounts, bench_scale).
    mine = Account.objects.filter(owner_id=user_id).order_by().values("pk").union(usable)
    return (
        Account.objects.filter(pk__in=mine, closed_at__isnull=True).order_by().values_list("pk")[:2]
    )


# Switch Account is in every page's menu, so whether the person has several accounts is
# asked on every request, and never remembered across requests (a revocation hides it at
# once). Building that query with the ORM cost more than a tenth of a page: it is built
# once per process (core/prepared.py).
SELECTABLE = PreparedQuery(Account, _selectable_ids, user_id=int, now=datetime)
