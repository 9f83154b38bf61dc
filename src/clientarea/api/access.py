"""How an API view declares what it needs, and the check of that declaration.

An API view declares an ``ApiRule``: ``token`` (any live token of the account),
``token:<permission>``, or ``token:owner`` (a token its creator made as the account's
owner, carrying the Users power: users and invitations). The access table and
``docs/access.md`` read it, as they read the pages' rules. To the pages'
``AccessMiddleware`` the rule is public, which is true: the session plays no part in the
API (the token is checked by DRF's authentication and ``TokenPermission`` below, on every
request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from clientarea.accounts import permissions
from clientarea.accounts.policy import Access, AccessRule, RuleKind

from .services import TokenAccess

OWNER = "owner"  # token:owner


@dataclass(frozen=True)
class ApiRule(AccessRule):
    # token:owner: the owner's Users power (``Access.holds_power``), never a permission.
    owner_power: permissions.OwnerPower | None = None

    def describe(self) -> str:
        if self.owner_power is not None:
            return f"token:{OWNER}"
        return f"token:{self.permission}" if self.permission else "token"


def token_rule(permission: permissions.Perm | None = None) -> ApiRule:
    if permission is not None and permission.value not in permissions.BY_CODE:
        raise ValueError(f"Unknown permission {permission!r}")  # pragma: no cover
    return ApiRule(RuleKind.PUBLIC, permission.value if permission else None)


def token_owner_rule() -> ApiRule:
    """Users and invitations: a token its creator made as the account's owner, choosing
    the Users power, while they are the owner."""
    return ApiRule(RuleKind.PUBLIC, None, owner_power=permissions.OwnerPower.MANAGE_USERS)


USERS_POWER_MISSING = (
    "This token does not carry the Users power: only a token its creator made as the "
    "account's owner, choosing Manage users and invitations, manages users and invitations."
)


class NotCarried(exceptions.PermissionDenied):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.problem_code = "permission_missing"


def token_access(request: Request) -> Access:
    """The authenticated token's access (after ``TokenPermission`` let the view run)."""
    found = request.auth
    assert isinstance(found, TokenAccess)
    return found.access


class TokenPermission(BasePermission):
    """A live token, carrying the permission the view's ``access_rule`` names (checked
    against the token's access as computed for this request)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not isinstance(request.auth, TokenAccess):
            raise exceptions.NotAuthenticated()
        rule = getattr(view, "access_rule", None)
        if not isinstance(rule, ApiRule):
            return False  # deny by default: a view that declares nothing is never served
        if rule.owner_power is not None and not request.auth.access.holds_power(rule.owner_power):
            raise NotCarried(USERS_POWER_MISSING)
        if rule.permission and not request.auth.access.has(rule.permission):
            label = permissions.BY_CODE[rule.permission].label
            raise NotCarried(
                f"This token does not carry {label} ({rule.permission}), or its creator "
                "no longer holds it."
            )
        return True
