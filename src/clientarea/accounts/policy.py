"""The one authorization policy of the client area.

``may(user, perm, account)`` is the only place that decides whether a person may do
something on an account. Views declare what they need with one of the decorators below;
``AccessMiddleware`` enforces the declaration before the view runs, and refuses any view
that declares nothing (deny by default). Objects are always looked up through
``account_object_or_404`` so another account's object is a 404, never a 403 that would
confirm it exists.

A grant may be limited to chosen services and domains (its resource scope, see
``scope.py``). ``Access`` carries it; ``Access.in_scope`` and ``may(..., obj=...)`` decide
it; ``scoped_object_or_404`` makes an object outside the scope a 404 exactly like another
account's, and ``scope_filter`` narrows any list to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import F, FilteredRelation, Model, Q, QuerySet
from django.http import Http404, HttpRequest
from django.utils import timezone

from clientarea.core.prepared import PreparedQuery

from . import permissions
from .models import Account, Contact, Membership, User, membership_usable_q
from .permissions import OwnerPower
from .scope import kind_for_model, scoped_email_kinds

V = TypeVar("V", bound=Callable[..., Any])


class RuleKind(StrEnum):
    PUBLIC = "public"  # anyone, logged in or not
    LOGIN = "login"  # any logged-in user; no account needed (profile, switcher)
    ACCOUNT = "account"  # a usable access to the current account, any permissions
    PERMISSION = "permission"  # a usable access holding `permission`
    OWNER = "owner"  # the account owner only


@dataclass(frozen=True)
class AccessRule:
    kind: RuleKind
    permission: str | None = None

    def describe(self) -> str:
        if self.kind is RuleKind.PERMISSION:
            assert self.permission is not None
            return f"permission:{self.permission}"
        return self.kind.value

    @property
    def needs_account(self) -> bool:
        return self.kind in (RuleKind.ACCOUNT, RuleKind.PERMISSION, RuleKind.OWNER)


ACCESS_RULE_ATTR = "access_rule"


def _declare(rule: AccessRule) -> Callable[[V], V]:
    def decorator(view: V) -> V:
        setattr(view, ACCESS_RULE_ATTR, rule)
        return view

    return decorator


def public(view: V) -> V:
    return _declare(AccessRule(RuleKind.PUBLIC))(view)


def login_only(view: V) -> V:
    return _declare(AccessRule(RuleKind.LOGIN))(view)


def account_member(view: V) -> V:
    return _declare(AccessRule(RuleKind.ACCOUNT))(view)


def owner_only(view: V) -> V:
    return _declare(AccessRule(RuleKind.OWNER))(view)


def requires(perm: permissions.Perm) -> Callable[[V], V]:
    if perm.value not in permissions.BY_CODE:  # pragma: no cover - guards typos at import
        raise ValueError(f"Unknown permission {perm!r}")
    return _declare(AccessRule(RuleKind.PERMISSION, perm.value))


def rule_of(view: Any) -> AccessRule | None:
    rule = getattr(view, ACCESS_RULE_ATTR, None)
    if rule is None and hasattr(view, "view_class"):
        rule = getattr(view.view_class, ACCESS_RULE_ATTR, None)
    return rule


@dataclass(frozen=True)
class Access:
    """What the current user may do on the current account, built once per request."""

    user: User
    account: Account
    membership: Membership | None  # None for the owner
    is_owner: bool
    permissions: frozenset[str]
    # The resource scope: None = every service and domain of the account; otherwise the
    # ids of each kind ("service", "domain") the grant is limited to.
    scope: Mapping[str, frozenset[int]] | None = None

    def has(self, perm: str) -> bool:
        return self.is_owner or perm in self.permissions

    @property
    def is_scoped(self) -> bool:
        return self.scope is not None

    def scope_ids(self, kind: str) -> frozenset[int] | None:
        """The ids of `kind` this access is limited to, or None: no limit."""
        if self.scope is None:
            return None
        return self.scope.get(kind, frozenset())

    def in_scope(self, kind: str, obj_id: int | None) -> bool:
        if self.scope is None:
            return True
        return obj_id is not None and obj_id in self.scope.get(kind, frozenset())

    def reaches(self, obj: Model) -> bool:
        """Is `obj` (of any model with an account) this access's to see: of this account,
        and inside the scope when it is of a scopable kind?"""
        kind = kind_for_model(type(obj))
        field = kind.account_field if kind else "account"
        if getattr(obj, f"{field}_id", None) != self.account.pk:
            return False
        return kind is None or self.in_scope(kind.name, obj.pk)

    def reads_email(self, kind: str, about_kind: str | None, about_id: int | None) -> bool:
        """May this person receive and read the account's email of `kind` about an item?
        A scoped person reads product and domain emails only about their items."""
        if kind not in self.email_kinds:
            return False
        if self.scope is None or kind not in scoped_email_kinds():
            return True
        return about_kind is not None and self.in_scope(about_kind, about_id)

    @property
    def can(self) -> dict[str, bool]:
        """`has` for templates, which cannot pass arguments: `{% if access.can.contacts %}`."""
        return {code: self.has(code) for code in permissions.ALL_CODES}

    @property
    def email_kinds(self) -> frozenset[str]:
        """The kinds of the account's email this person may receive and read: the account
        kinds their grant covers, plus the owner-only security notices for the owner.
        (Personal emails are their addressee's alone, whoever that is.)"""
        if self.is_owner:
            return frozenset(permissions.ACCOUNT_EMAIL_KINDS) | {
                permissions.EmailKind.SECURITY.value
            }
        return permissions.email_kinds_covered(self.permissions)

    @property
    def email_kind_labels(self) -> list[str]:
        return [
            label for value, label in permissions.EmailKind.choices if value in self.email_kinds
        ]

    def current(self, now: Any = None) -> Access | None:
        """This access as the database has it now, never wider than it was built: None
        once it has ended (revoked, expired, removed, the account closed, ownership moved
        away from an owner); otherwise its permissions and scope intersected with the
        person's current grant. Service functions ask it (``access_require``), so an
        access built earlier in the request (or for a token) is never trusted on its own."""
        fresh = access_for(self.user, self.account.pk, now)
        if fresh is None or (self.is_owner and not fresh.is_owner):
            return None
        if self.is_owner:
            return fresh
        granted = permissions.ALL_CODES if fresh.is_owner else fresh.permissions
        return Access(
            self.user,
            fresh.account,
            fresh.membership,
            False,
            self.permissions & granted,
            scope_intersect(self.scope, fresh.scope),
        )

    def holds_power(self, power: OwnerPower) -> bool:
        """May this access use an owner-only power (never grantable)? The owner's own
        access, on an account not closed. (A token's access holds none, except the Users
        power its owner-creator chose for it: see ``api.services.TokenGrant``.)"""
        return self.is_owner and self.account.closed_at is None

    def allows(self, rule: AccessRule) -> bool:
        if rule.kind is RuleKind.OWNER:
            return self.is_owner
        if rule.kind is RuleKind.PERMISSION:
            assert rule.permission is not None
            return self.has(rule.permission)
        return True


class UserRequest(HttpRequest):
    """A request from a logged-in user (views declared `login_only`)."""

    user: User
    access: Access | None
    access_lost: bool
    # (account id, two-factor required and off), read with the access (AccessMiddleware).
    two_factor_read: tuple[int, bool] | None


class AccountRequest(HttpRequest):
    """A request that the middleware let through to an account view: access is set."""

    user: User
    access: Access
    access_lost: bool


def access_for(user: User, account_id: int | None, now: Any = None) -> Access | None:
    """Build the user's access to an account, or None if they have none (any more)."""
    return access_with(user, account_id, now)[0]


# The user's usable membership, joined to the account row in the access query, and its
# columns read under these names (never a field name of Account).
_MEMBERSHIP_JOIN = "usable_membership"
_MEMBERSHIP_COLUMNS = {
    f"membership_{f.attname}": f.attname for f in Membership._meta.concrete_fields
}


def _access_queryset(
    user_id: int, account_id: int, now: datetime, also: dict[str, Any]
) -> QuerySet[Account]:
    """The account with its owner, and the user's usable membership of it
    (``membership_usable_q``, the same rule as ``Membership.objects.usable``) as a LEFT
    JOIN, with the expressions `also` beside them. A person has at most one membership
    per account (a unique constraint), so it is one row, whatever the data."""
    usable = membership_usable_q(now, prefix="memberships__") & Q(memberships__user=user_id)
    return (
        Account.objects.select_related("owner")
        .annotate(**{_MEMBERSHIP_JOIN: FilteredRelation("memberships", condition=usable)})
        .annotate(
            **{
                name: F(f"{_MEMBERSHIP_JOIN}__{attname}")
                for name, attname in _MEMBERSHIP_COLUMNS.items()
            },
            **also,
        )
        .filter(pk=account_id)
        .order_by()[:1]
    )


@dataclass(frozen=True)
class AccessQuery:
    """The access query with more read beside it in the same statement, prepared once
    per process (``core/prepared.py``): built on every request with the ORM, it was
    more Python work than a whole bare Django page."""

    prepared: PreparedQuery[Account]
    also: tuple[str, ...]  # the names of what is read beside the access


def access_query(
    also: Callable[..., dict[str, Any]] | None = None,
    also_names: tuple[str, ...] = (),
    **kinds: type,
) -> AccessQuery:
    """The access query reading, beside the access, the expressions (an ``Exists``, a
    ``Subquery``) that ``also(user_id=, account_id=, now=, **values)`` returns under
    `also_names`: what a caller needs on every request next to the access, such as the
    tracked session's state or the account's two-factor rule (``AccessMiddleware``, the
    API's tokens). `kinds` names the further values `also` takes and their types."""

    def build(user_id: int, account_id: int, now: datetime, **values: Any) -> QuerySet[Account]:
        extra = also(user_id=user_id, account_id=account_id, now=now, **values) if also else {}
        if set(extra) != set(also_names):
            raise TypeError(f"The access query reads {sorted(extra)}, not {sorted(also_names)}.")
        return _access_queryset(user_id, account_id, now, extra)

    prepared = PreparedQuery(Account, build, user_id=int, account_id=int, now=datetime, **kinds)
    return AccessQuery(prepared, also_names)


ACCESS_ONLY = access_query()


def access_with(
    user: User,
    account_id: int | None,
    now: Any = None,
    query: AccessQuery = ACCESS_ONLY,
    **values: Any,
) -> tuple[Access | None, dict[str, Any] | None]:
    """``access_for``, in one query, which also reads what `query` reads beside the access
    (``access_query``), given `values`. Returns the access (or None) and the values read
    beside it, or None for them when no account row was read (no account asked for, an
    inactive user, no such account): the caller then reads them on its own."""
    if account_id is None or not user.is_authenticated or not user.is_active:
        return None, None
    account_pk = _an_id(account_id)
    if account_pk is None:
        return None, None
    rows = query.prepared.fetch(
        user_id=user.pk, account_id=account_pk, now=now or timezone.now(), **values
    )
    if not rows:
        return None, None
    row = rows[0]
    return _access_of(user, row), {name: getattr(row, name) for name in query.also}


def _an_id(value: Any) -> int | None:
    """An account id as the session or a caller holds it: an int (a digit string from an
    older session) that an id column can hold, else None (no account)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 20:
        value = int(value)
    if type(value) is not int or not 0 < value < 2**63:
        return None
    return value


def _access_of(user: User, account: Account) -> Access | None:
    """The access the account row of ``access_with`` gives `user`."""
    if account.closed_at is not None:
        return None  # a closed account is kept for the records, selectable by nobody
    if is_owner(user, account):
        return Access(user, account, None, True, permissions.ALL_CODES)
    columns = {attname: getattr(account, name) for name, attname in _MEMBERSHIP_COLUMNS.items()}
    if columns["id"] is None:
        return None
    membership = Membership.from_db(account._state.db, list(columns), list(columns.values()))
    membership.account = account
    membership.user = user
    return Access(
        user, account, membership, False, membership.permission_codes, membership.scope_items
    )


def is_owner(user: User | None, account: Account) -> bool:
    return user is not None and user.pk is not None and user.pk == account.owner_id


def may_use_owner_power(user: User | None, account: Account, power: permissions.OwnerPower) -> bool:
    """Owner-only powers (manage users, payment methods, ownership, closing) are never
    grantable: only the owner has them, whatever permissions a membership holds. Service
    functions ask this too, so a caller that skipped the view's check is still refused.
    A closed account has no powers left to use: nobody can select it."""
    return account.closed_at is None and is_owner(user, account)


def may(user: User, perm: str, account: Account, obj: Model | None = None) -> bool:
    """May `user` do `perm` on `account` (on `obj` of it, inside their scope) right now?
    The single question of the policy."""
    access = access_for(user, account.pk)
    if access is None or not access.has(perm):
        return False
    return obj is None or access.reaches(obj)


class OutOfReach(Http404):
    """A service function was asked to act on an object its actor may not reach (another
    account's, outside their scope, or without the permission): "no such object", like
    the page would answer, whatever the entry point."""


class NotPermitted(PermissionDenied):
    """A service function was asked to act on an object its actor reaches, but their
    access does not carry the permission the action needs: a 403 on every entry point
    (the message names the permission)."""

    def __init__(self, perm: str) -> None:
        label = permissions.BY_CODE[perm].label if perm in permissions.BY_CODE else perm
        super().__init__(f"Your access does not include {label} ({perm}).")
        self.permission = perm


def scope_intersect(
    first: Mapping[str, frozenset[int]] | None, second: Mapping[str, frozenset[int]] | None
) -> Mapping[str, frozenset[int]] | None:
    """Both resource scopes at once: None is no limit; otherwise the ids both allow,
    kind by kind."""
    if first is None:
        return second
    if second is None:
        return first
    return {
        kind: frozenset(first.get(kind, frozenset()) & second.get(kind, frozenset()))
        for kind in set(first) | set(second)
    }


def access_require(access: Access, perm: str, obj: Model, *, noun: str) -> Access:
    """The check a service function acting for a person makes itself, whoever called it
    (page, API, admin action, command): `access` as it stands now (``Access.current``)
    must reach `obj` (of its account, inside its scope) and hold `perm`. Another
    account's object, one outside the scope, or an access that has ended is
    ``OutOfReach`` ("No such <noun>.", a 404 that confirms nothing); an object it
    reaches without the permission is ``NotPermitted`` (403). Returns the current access."""
    current = access.current()
    if current is None or not current.reaches(obj):
        raise OutOfReach(f"No such {noun}.")
    if not current.has(perm):
        raise NotPermitted(perm)
    return current


def may_receive_email(
    user: User | None,
    kind: str,
    account: Account,
    about: tuple[str, int] | None = None,
) -> bool:
    """May `user` be sent (or read) `account`'s email of `kind` (about the item `about`,
    a (scope kind, id) pair) right now? The same grant that shows them a page: ended
    access, a grant that does not cover the kind, or a scope without the item, gets
    nothing, whoever triggered the email. Personal emails are not account email: they
    go to their addressee alone (see clientarea.notifications)."""
    if user is None or user.pk is None:
        return False
    access = access_for(user, account.pk)
    about_kind, about_id = about if about else (None, None)
    return access is not None and access.reads_email(kind, about_kind, about_id)


def may_contact_receive(
    contact: Contact, kind: str, account: Account, about: tuple[str, int] | None = None
) -> bool:
    """May a secondary contact be sent `account`'s email of `kind` right now? It must be
    the account's, confirmed and opted in; a kind a sub-account chose for it goes only
    while that person's own access covers the kind (their revocation ends it too)."""
    if contact.account_id != account.pk or not contact.receives(kind):
        return False
    sponsor_id = contact.sponsor_of(kind)
    if sponsor_id is None or sponsor_id == account.owner_id:
        return True
    sponsor = User.objects.filter(pk=sponsor_id).first()
    if sponsor is None:
        return False
    access = access_for(sponsor, account.pk)
    if access is None or (access.is_scoped and kind in per_item_email_kinds()):
        return False  # a contact would get them about every item and every ticket
    return may_receive_email(sponsor, kind, account, about=about)


# The kinds of the account's email its owner may turn off (Emails You Receive, see
# ``accounts.owner_emails``), in the order the page lists them. Security notices, personal
# emails and general notices always go.
OWNER_CHOOSABLE_KINDS: tuple[str, ...] = (
    permissions.EmailKind.INVOICE.value,
    permissions.EmailKind.SUPPORT.value,
    permissions.EmailKind.PRODUCT.value,
    permissions.EmailKind.DOMAIN.value,
)


def owner_kinds_off(account: Account) -> frozenset[str]:
    value = account.owner_email_kinds_off
    kinds = value if isinstance(value, list) else []
    return frozenset(k for k in kinds if k in OWNER_CHOOSABLE_KINDS)


def owner_receives(account: Account, kind: str) -> bool:
    """Does the account's owner receive its email of `kind`? Always for the kinds that
    cannot be turned off. The notification layer asks when it queues an email to the
    owner, and the worker again just before sending."""
    return kind not in owner_kinds_off(account)


def per_item_email_kinds() -> frozenset[str]:
    """Kinds whose emails are each about one item or ticket: a person limited to chosen
    services and domains reads product and domain emails about their items, and support
    emails addressed to them (the tickets they opened), no others."""
    return scoped_email_kinds() | {permissions.EmailKind.SUPPORT.value}


def contact_kinds_grantable(access: Access) -> frozenset[str]:
    """The kinds of email a person may have sent to a secondary contact: only the kinds
    they could read themselves (the owner: every kind a contact can receive). A scoped
    person reads product, domain and support emails about their own items and tickets
    only, and a contact would receive them about all: those kinds are not theirs to give."""
    kinds = access.email_kinds & frozenset(permissions.ACCOUNT_EMAIL_KINDS)
    if access.is_scoped:
        kinds -= per_item_email_kinds()
    return kinds


def accounts_for(user: User) -> QuerySet[Account]:
    """Every account the user may currently select (owned, or a usable membership)."""
    usable = Membership.objects.usable().filter(user=user).values("account_id")
    # The ids from the owner index and the membership index, united: `owner = user OR pk
    # IN (memberships)` can use neither index, so it read every account (a sequential
    # scan of the accounts table on every page: 50 ms at 100,000 accounts, bench_scale).
    mine = Account.objects.filter(owner=user).order_by().values("pk").union(usable)
    return (
        Account.objects.filter(pk__in=mine)
        .filter(closed_at__isnull=True)
        .select_related("owner")
        .order_by("company_name", "pk")
    )


M = TypeVar("M", bound=Model)


class NotInAccount(Http404):
    """`account_object_or_404` found nothing in the current account: a 404, which carries
    what was looked up, so that a link into another account of the same person can be
    followed there (``accounts.links``) when their access there reaches the object."""

    def __init__(self, model: type[Model], account_field: str, lookup: dict[str, Any]) -> None:
        super().__init__("No such object.")
        self.model = model
        self.account_field = account_field
        self.lookup = lookup

    def holder_ids(self) -> set[int]:
        """The accounts holding an object with this lookup (any account: callers filter
        by the person's own access)."""
        rows = self.model._default_manager.filter(**self.lookup).values_list(
            self.account_field, flat=True
        )
        return {pk for pk in rows[:10] if pk is not None}


class ObjectFound(Exception):
    """Raised by `account_object_or_404` instead of returning the object while a page is
    only asked whether it would show it (``object_probe``): the page stops at its lookup,
    before it calls anything outside or changes anything."""


_PROBING: ContextVar[bool] = ContextVar("object_probe", default=False)


@contextmanager
def object_probe() -> Iterator[None]:
    """Within this block, a page's object lookup that succeeds raises `ObjectFound`."""
    token = _PROBING.set(True)
    try:
        yield
    finally:
        _PROBING.reset(token)


def account_object_or_404(
    queryset: QuerySet[M], account: Account, *, account_field: str = "account", **lookup: Any
) -> M:
    """Fetch an object of the current account; any other account's object is a 404."""
    obj = queryset.filter(**{account_field: account}, **lookup).first()
    if obj is None:
        raise NotInAccount(queryset.model, account_field, lookup)
    if _PROBING.get():
        raise ObjectFound
    return obj


def scope_filter(
    queryset: QuerySet[M], access: Access, kind: str, *, field: str = "pk"
) -> QuerySet[M]:
    """Narrow a list to the access's scope of `kind` (one `IN` on `field`; no-op without
    a scope)."""
    ids = access.scope_ids(kind)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{field}__in": sorted(ids)})


def scoped_object_or_404(queryset: QuerySet[M], access: Access, kind: str, **lookup: Any) -> M:
    """Fetch an object of the current account inside the access's scope: another
    account's object and one outside the scope are the same 404."""
    return account_object_or_404(scope_filter(queryset, access, kind), access.account, **lookup)
