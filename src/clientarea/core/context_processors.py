from typing import Any

from django.conf import settings
from django.http import HttpRequest

from clientarea.accounts.policy import accounts_for

from .registry import NAV_ITEMS


def site(request: HttpRequest) -> dict[str, Any]:
    access = getattr(request, "access", None)
    nav = []
    if access is not None:
        nav = [i for i in NAV_ITEMS if i.permission is None or access.has(i.permission)]
    user = getattr(request, "user", None)

    def account_count() -> int:
        if user is None or not user.is_authenticated:
            return 0
        return accounts_for(user).count()

    return {
        "site_name": settings.SITE_NAME,
        "access": access,
        "nav_items": nav,
        # Lazy: only pages that show the switcher pay for the query.
        "account_count": account_count,
    }
