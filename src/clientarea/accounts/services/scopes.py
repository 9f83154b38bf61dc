"""Resource scopes of grants (memberships and invitations): checking a chosen scope
against the account, and what the emails say of one. The scope kinds themselves are
registered by the domain apps (``clientarea.accounts.scope``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..models import Account
from ..scope import SCOPE_KINDS, Scope, scope_labels, scope_to_json
from .errors import AccessError


def scope_checked(
    *,
    account: Account,
    scope: Mapping[str, Iterable[int]] | None,
    error: type[Exception] = AccessError,
) -> dict[str, list[int]] | None:
    """The stored form of `scope`, after checking that it names only kinds that exist and
    only items of `account` (one query per kind). A forged id of another account's item,
    or of no item at all, is refused with a message and nothing is stored."""
    if scope is None:
        return None
    unknown = set(scope) - set(SCOPE_KINDS)
    if unknown:
        raise error("A scope can name only services and domains.")
    stored = scope_to_json(scope)
    assert stored is not None
    for name, ids in stored.items():
        if not ids:
            continue
        kind = SCOPE_KINDS[name]
        found = set(
            kind.model._default_manager.filter(
                **{kind.account_field: account, "pk__in": ids}
            ).values_list("pk", flat=True)
        )
        if found != set(ids):
            raise error(
                f"Choose only {kind.label.lower()} of this account: "
                "some of the chosen ones are not (any more)."
            )
    return stored


def scope_within(account: Account, scope: Scope | None) -> Scope | None:
    """`scope` without the items that are no longer `account`'s."""
    if scope is None:
        return None
    out: dict[str, frozenset[int]] = {}
    for name, kind in SCOPE_KINDS.items():
        ids = scope.get(name, frozenset())
        out[name] = frozenset(
            kind.model._default_manager.filter(
                **{kind.account_field: account, "pk__in": sorted(ids)}
            ).values_list("pk", flat=True)
            if ids
            else ()
        )
    return out


def scope_email_context(account: Account, scope: Scope | None) -> dict[str, Any]:
    """What the emails say of a scope: every item, or the named ones (or none left)."""
    return {"scope_all": scope is None, "scope_labels": scope_labels(account, scope)}
