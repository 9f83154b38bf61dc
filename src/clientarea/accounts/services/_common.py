"""Helpers that several modules of this package share. Not part of its interface:
import the public names from ``clientarea.accounts.services``."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from django.db.models import Model

from .. import permissions
from ..models import Account, User
from ..policy import Access, access_for
from .errors import AccessNotPermitted, AccessOutOfReach, InvitationError


def _acting(access: Access | None, actor: User | None, account_id: int) -> Access:
    """The access a service function acts for: the caller's (a page's ``request.access``,
    a token's), or, when only a person is named (scripts, demo data), that person's whole
    access as the policy has it now. Either way the function checks it itself."""
    if access is not None:
        return access
    if actor is None:
        raise TypeError("Name the access (or the person) the action is done for.")
    found = access_for(actor, account_id)
    if found is None:
        raise AccessOutOfReach("You no longer have access to this account.")
    return found


def _access_checked(
    access: Access,
    obj: Model,
    *,
    noun: str,
    refusal: str,
    perm: str | None = None,
    power: permissions.OwnerPower | None = None,
) -> Access:
    """The policy's check, made by the service whoever called it: the access as it stands
    now (``Access.current``: ended is refused, never wider than it was built) must reach
    `obj` (the account itself, or an object of it inside the scope), else
    ``AccessOutOfReach`` ("No such <noun>."); and hold `perm` or the owner-only `power`,
    else ``AccessNotPermitted`` with `refusal`, the page's sentence. Returns the current
    access."""
    current = access.current()
    reached = current is not None and (
        obj.pk == current.account.pk if isinstance(obj, Account) else current.reaches(obj)
    )
    if current is None or not reached:
        raise AccessOutOfReach(f"No such {noun}.")
    if perm is not None and not current.has(perm):
        raise AccessNotPermitted(perm, refusal)
    if power is not None and not current.holds_power(power):
        raise AccessNotPermitted(power.value, refusal)
    return current


def _owner_checked(access: Access, obj: Model, *, noun: str) -> Access:
    """Users and invitations are the owner's: their own access, or a token they made as
    the owner with the Users power."""
    return _access_checked(
        access,
        obj,
        noun=noun,
        refusal="Only the account owner can manage users and invitations.",
        power=permissions.OwnerPower.MANAGE_USERS,
    )


def _grant_within(acting: Access, codes: list[str], scope: Any) -> None:
    """A grant given by anyone but the owner in person (a token with the Users power)
    never exceeds what that access carries now: its permissions, inside its scope.
    Otherwise a token carrying one permission could invite, or widen, a person with All
    Permissions on everything. ``AccessNotPermitted`` (403), nothing changed."""
    if acting.is_owner:
        return
    beyond = sorted(set(codes) - set(acting.permissions))
    if beyond:
        raise AccessNotPermitted(
            beyond[0],
            "A grant can hold only permissions this token carries itself; it does not "
            f"carry {', '.join(beyond)}.",
        )
    if acting.scope is None:
        return
    wider = scope is None or any(
        not set(scope.get(kind) or ()) <= set(acting.scope.get(kind, frozenset()))
        for kind in set(scope) | set(acting.scope)
    )
    if wider:
        raise AccessNotPermitted(
            "scope",
            "This token is limited to chosen services and domains: a grant it gives must "
            "be limited to some of those.",
        )


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
