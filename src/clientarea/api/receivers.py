"""Tokens die with their creator's footing: connected in ``ApiConfig.ready``."""

from __future__ import annotations

from typing import Any

from . import services


def on_access_ended(sender: Any, membership: Any, **kwargs: Any) -> None:
    services.token_void_for_access_ended(membership=membership)


def on_ownership_transferred(sender: Any, account: Any, former_owner: Any, **kwargs: Any) -> None:
    services.token_void_for_ownership_moved(account=account, former_owner=former_owner)
