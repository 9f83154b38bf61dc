from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from clientarea.accounts.middleware import account_pin_field
from clientarea.accounts.models import Account, Membership

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
    prepared = _selectable_sql(Account.objects.db)
    if prepared is None:  # the query's shape did not allow preparing it: build it
        return len(_selectable_ids(user.pk, timezone.now())) > 1
    sql, marked, user_at, now_at = prepared
    params = list(marked)
    for i in user_at:
        params[i] = user.pk
    now = connections[Account.objects.db].ops.adapt_datetimefield_value(timezone.now())
    for i in now_at:
        params[i] = now
    with connections[Account.objects.db].cursor() as cursor:
        cursor.execute(sql, params)
        return len(cursor.fetchall()) > 1


# Switch Account is in every page's menu, so whether the person has several accounts is
# asked on every request, and never remembered across requests (a revocation hides it at
# once). Building that query with the ORM cost more than a tenth of a page; its SQL is the
# same for everyone, so it is built once per process with marks where the person's id and
# the time go, and each request only puts them in.
_USER_MARK = -730_519_027  # no user's id: marks where the person's id goes
_NOW_MARK = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)


def _selectable_ids(user_id: int, now: datetime) -> QuerySet[Account, int]:
    """The ids of at most two of policy.accounts_for(the user) at `now`: the accounts they
    own or hold a usable membership of, not closed (a test holds the two to the same)."""
    usable = Membership.objects.usable(now).filter(user_id=user_id).values("account_id")
    # United, as accounts_for does: `owner OR pk IN (...)` can use no index and read every
    # account (50 ms a page at 100,000 accounts, bench_scale).
    mine = Account.objects.filter(owner_id=user_id).order_by().values("pk").union(usable)
    return (
        Account.objects.filter(pk__in=mine, closed_at__isnull=True)
        .order_by()
        .values_list("pk", flat=True)[:2]
    )


@lru_cache(maxsize=4)
def _selectable_sql(alias: str) -> tuple[str, tuple[Any, ...], list[int], list[int]] | None:
    """The SQL of ``_selectable_ids``, its parameters, and where the user's id and the time
    go in them; None if the marks are not found as given (the ORM changed them)."""
    sql, params = _selectable_ids(_USER_MARK, _NOW_MARK).query.get_compiler(using=alias).as_sql()
    now = connections[alias].ops.adapt_datetimefield_value(_NOW_MARK)
    user_at = [i for i, p in enumerate(params) if type(p) is int and p == _USER_MARK]
    now_at = [i for i, p in enumerate(params) if p == now]
    if len(user_at) != 2 or len(now_at) != 1:
        return None
    return sql, tuple(params), user_at, now_at
