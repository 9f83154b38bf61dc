from typing import Any

from django.conf import settings
from django.http import HttpRequest

from .registry import NAV_ITEMS


def site(request: HttpRequest) -> dict[str, Any]:
    access = getattr(request, "access", None)
    nav = []
    if access is not None:
        nav = [i for i in NAV_ITEMS if i.permission is None or access.has(i.permission)]
    return {"site_name": settings.SITE_NAME, "access": access, "nav_items": nav}
