"""How to make an object of a given account for each object route of the access table
(the URL kwargs that name it), and fixed kwargs for routes whose arguments are not
objects of an account (signed links)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clientarea.accounts.models import Account

OBJECT_KWARGS: dict[str, Callable[[Account], dict[str, Any]]] = {}

STATIC_KWARGS: dict[str, dict[str, Any]] = {
    "accounts:password_reset_confirm": {"uidb64": "MQ", "token": "set-password"},
}
