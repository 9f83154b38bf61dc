"""Resource scope: a grant limited to chosen services and domains.

A scope is part of a sub-account's grant, next to its permissions: ``None`` means every
service and domain of the account; a mapping ``{"service": {ids}, "domain": {ids}}``
means only those (an empty mapping: nothing scoped at all). Invoices, contacts and the
profile are account-wide: a scope has no effect on them.

Identity and access never import a domain app, so each domain app registers the kinds
of object a scope can name (``register_scope_kind`` in its ``AppConfig.ready``): the
kind's name and label, the model, how to list an account's items for the form, the
permission that shows them and the kind of email that is about them.

Storage: the scope is a JSON column on ``Membership`` and ``Invitation``, like the
permissions. It is part of the grant, so it is read in the one query that already loads
the membership for every request (no extra query), copied verbatim from an invitation to
the membership it becomes, and audited as plain data. Lists filter with one
``pk IN (...)`` over at most the account's own items, so their query count does not grow
with the scope. The price is paid on the rare write side: a removed item is taken out of
the account's scopes row by row (``services.scope_item_forget``), an account has few
sub-accounts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import Model

if TYPE_CHECKING:
    from .models import Account

Scope = Mapping[str, frozenset[int]]


@dataclass(frozen=True)
class ScopeKind:
    name: str  # "service": the key in a stored scope and in `Access.in_scope`
    label: str  # "Services"
    model: type[Model]
    # The account's items as (id, label), in display order, for the form and the labels.
    choices: Callable[[Account], list[tuple[int, str]]]
    permission: str  # the permission that shows these items (products, domains)
    email_kind: str  # the kind of email that is about one of these items
    account_field: str = "account"


SCOPE_KINDS: dict[str, ScopeKind] = {}


def register_scope_kind(kind: ScopeKind) -> None:
    SCOPE_KINDS[kind.name] = kind


def kind_for_model(model: type[Model]) -> ScopeKind | None:
    for kind in SCOPE_KINDS.values():
        if issubclass(model, kind.model):
            return kind
    return None


def scoped_email_kinds() -> frozenset[str]:
    """The kinds of email that are about one item (product, domain): a scoped person reads
    only those about an item in their scope."""
    return frozenset(k.email_kind for k in SCOPE_KINDS.values())


def _ids(value: Any) -> frozenset[int]:
    if not isinstance(value, list | tuple | set | frozenset):
        return frozenset()
    return frozenset(i for i in value if isinstance(i, int) and not isinstance(i, bool))


def scope_from_json(value: Any) -> Scope | None:
    """The stored value as a scope: None (everything), or kind -> ids. A malformed value
    reaches nothing rather than everything."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return {}
    return {str(kind): _ids(ids) for kind, ids in value.items()}


def scope_to_json(scope: Mapping[str, Iterable[int]] | None) -> dict[str, list[int]] | None:
    """The stored form: every registered kind, sorted ids (so equal scopes compare equal)."""
    if scope is None:
        return None
    return {name: sorted(_ids(list(scope.get(name, ())))) for name in SCOPE_KINDS}


def scope_is_empty(scope: Scope | None) -> bool:
    return scope is not None and not any(scope.values())


def scope_labels(account: Account, scope: Scope | None) -> list[str]:
    """The names of the scoped items, kind by kind (one query per kind)."""
    if scope is None:
        return []
    out: list[str] = []
    for kind in SCOPE_KINDS.values():
        ids = scope.get(kind.name, frozenset())
        if ids:
            out.extend(label for pk, label in kind.choices(account) if pk in ids)
    return out


def scope_label_map(
    account: Account, scopes: Iterable[Scope | None] | None = None
) -> dict[tuple[str, int], str]:
    """Every item's label of the account (one query per kind), for pages listing several
    scopes at once. Given `scopes`, only the items they name (one query per kind named):
    a page of 25 people of an account with thousands of services reads a few labels, not
    thousands (User Management, bench_scale)."""
    if scopes is None:
        return {
            (kind.name, pk): label
            for kind in SCOPE_KINDS.values()
            for pk, label in kind.choices(account)
        }
    named: dict[str, set[int]] = {}
    for scope in scopes:
        for name, ids in (scope or {}).items():
            named.setdefault(name, set()).update(ids)
    labels: dict[tuple[str, int], str] = {}
    for kind in SCOPE_KINDS.values():
        if named.get(kind.name):
            # The item's own str(), as kind.choices labels it.
            items = kind.model._default_manager.filter(
                **{kind.account_field: account, "pk__in": sorted(named[kind.name])}
            )
            labels.update(((kind.name, item.pk), str(item)) for item in items)
    return labels


def describe(scope: Scope | None, labels: Mapping[tuple[str, int], str]) -> dict[str, Any]:
    """What User Management and the emails show of a scope."""
    if scope is None:
        return {"all": True, "labels": [], "empty": False}
    names = [
        labels[kind, pk]
        for kind in SCOPE_KINDS
        for pk in sorted(scope.get(kind, ()))
        if (kind, pk) in labels
    ]
    return {"all": False, "labels": names, "empty": not names}
