"""Helpers that several modules of this package share. Not part of its interface:
import the public names from ``clientarea.accounts.services``."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from .. import permissions
from ..models import Account, User
from ..policy import may_use_owner_power
from .errors import AccessError, InvitationError


def _require_owner(account: Account, actor: User) -> None:
    """Owner-only powers, checked again in the service whatever the view did."""
    if not may_use_owner_power(actor, account, permissions.OwnerPower.MANAGE_USERS):
        raise AccessError("Only the account owner can manage users and invitations.")


def _codes_for_grant(permission_codes: Any) -> list[str]:
    codes = permissions.normalise(list(permission_codes))
    if not codes:
        raise InvitationError("Choose at least one permission, or All Permissions.")
    return codes


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> tuple[str, str]:
    token = secrets.token_urlsafe(32)  # 32 random bytes
    return token, invitation_token_hash(token)
