"""What each person, token and contact reaches in a state: the model's policy.

Each function mirrors one function of the real app's policy (cited), so the conformance
step can compare, state by state, the model's answer with the real app's: pages (route
groups by objects, see ``routes``), API endpoints through each live token, the email a
person may be sent and the entries of Email History they may open, and what a secondary
contact receives.

A reach is a frozenset: of (rule, item) groups for pages and the API, of (kind, item)
pairs for email. ``faults`` plants a mistake for the mutation checks (see ``FAULTS``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from .catalogue import (
    ACCOUNT_EMAIL_KINDS,
    ALL_CODES,
    EMAILS,
    EVERYTHING,
    ITEM_OF_EMAIL_KIND,
    PER_ITEM_EMAIL_KINDS,
    SECURITY,
    SUPPORT,
    email_kinds_covered,
    expand,
    in_scope,
    scope_intersect,
)
from .routes import PAGE_GROUPS, TOKEN_GROUPS, needed
from .state import NO_ONE, NO_TTL, State

Faults = frozenset[str]
NO_FAULTS: Faults = frozenset()

# The faults the mutation checks plant in the model (reach and rules).
FAULTS: dict[str, str] = {
    "revoke_noop": "revoking access changes nothing",
    "scope_ignored_on_one_route": "the scope is ignored on a domain's pages",
    "token_outlives_creator": "a token works on after its creator's access ended",
    "transfer_two_owners": "accepting a transfer leaves the former owner an owner too",
    "history_ignores_kinds": "Email History lists every kind to anyone holding emails",
    "resend_keeps_old_link": "a resent invitation's old link still admits its holder",
}
# Faults that break no invariant of one account but make one account's fate depend on
# another's: what the locality check of ``compose`` must find.
LOCALITY_FAULTS: dict[str, str] = {
    "revoke_in_every_account": "revoking a person ends their access to every account",
    "closing_hides_every_account": "closing one account hides every account's pages",
}


class Access(NamedTuple):
    """policy.Access: the person's access to one account right now."""

    is_owner: bool
    perms: frozenset[str]
    scope: tuple[str, ...]

    def has(self, perm: str) -> bool:
        return self.is_owner or perm in self.perms

    @property
    def is_scoped(self) -> bool:
        return self.scope != EVERYTHING

    @property
    def email_kinds(self) -> frozenset[str]:
        """Access.email_kinds."""
        if self.is_owner:
            return frozenset(ACCOUNT_EMAIL_KINDS) | {SECURITY}
        return email_kinds_covered(self.perms)

    def reads_email(self, kind: str, item: str) -> bool:
        """Access.reads_email: a scoped person reads product and domain emails only about
        their items."""
        if kind not in self.email_kinds:
            return False
        if not self.is_scoped or kind not in ITEM_OF_EMAIL_KIND:
            return True
        return item != "" and in_scope(self.scope, item)


def usable(ttl: int) -> bool:
    """Membership.is_usable's clock half: no expiry, or not past it."""
    return ttl == NO_TTL or ttl > 0


def access_for(s: State, u: int, a: int) -> Access | None:
    """policy.access_for: None for no login, a closed account, no usable membership."""
    if not s.logins[u] or s.closing[a] == "closed":
        return None
    if u in s.owners[a]:
        return Access(True, ALL_CODES, EVERYTHING)
    m = s.members[a][u]
    if not m or m.status != "active" or not usable(m.ttl):
        return None
    return Access(False, expand(m.perms), m.scope)


def holds_users_power(s: State, u: int, a: int) -> bool:
    """policy.may_use_owner_power / Access.holds_power: the owner, account not closed."""
    access = access_for(s, u, a)
    return access is not None and access.is_owner


@functools.cache
def _groups(
    access: Access, groups: tuple[tuple[str, str], ...], faults: Faults
) -> frozenset[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for rule, item in groups:
        if rule == "owner":
            ok = access.is_owner
        elif rule == "token:owner":
            ok = False  # decided by the caller (the Users power)
        else:
            ok = all(access.has(p) for p in needed(rule))
        if not ok:
            continue
        faulty = "scope_ignored_on_one_route" in faults and (rule, item) == _FAULTY_GROUP
        if item and not in_scope(access.scope, item) and not faulty:
            continue
        out.add((rule, item))
    return frozenset(out)


_FAULTY_GROUP = ("permission:domains", "domain")  # the domain's pages


def person_pages(
    s: State, u: int, a: int, faults: Faults = NO_FAULTS
) -> frozenset[tuple[str, str]]:
    """The page groups person u may use on account a: AccessMiddleware's check of the
    view's rule (Access.allows) and, for an object, scoped_object_or_404."""
    access = access_for(s, u, a)
    if access is None or ("closing_hides_every_account" in faults and "closed" in s.closing):
        return frozenset()
    return _groups(access, PAGE_GROUPS, faults)


class TokenGrant(NamedTuple):
    """api.services.TokenGrant: the token's access for a request."""

    access: Access
    manages_users: bool


def token_grant(s: State, a: int, c: int, faults: Faults = NO_FAULTS) -> TokenGrant | None:
    """api.services.token_authenticate (with _token_checked and _manages_users): the
    token creator c made on account a, as it works right now, or None."""
    t = s.tokens[a][c]
    if not t or t.revoked or t.ttl == 0:
        return None
    creator = access_for(s, c, a)
    if creator is None:
        if "token_outlives_creator" not in faults or s.closing[a] == "closed":
            return None
        creator = Access(False, ALL_CODES, EVERYTHING)
    if t.as_owner and not creator.is_owner:
        return None
    granted = ALL_CODES if creator.is_owner else creator.perms
    carried = expand(t.perms) & granted
    scope = scope_intersect(t.scope, creator.scope)
    manages = t.manages_users and t.as_owner and creator.is_owner
    return TokenGrant(Access(False, frozenset(carried), scope), manages)


def token_endpoints(
    s: State, a: int, c: int, faults: Faults = NO_FAULTS
) -> frozenset[tuple[str, str]]:
    """The API groups the token of creator c on account a reaches (TokenPermission)."""
    grant = token_grant(s, a, c, faults)
    if grant is None:
        return frozenset()
    out = set(_groups(grant.access, TOKEN_GROUPS, faults))
    if grant.manages_users:
        out.add(("token:owner", ""))
    return frozenset(out)


def person_receives(s: State, u: int, a: int) -> frozenset[tuple[str, str]]:
    """policy.may_receive_email: the emails of account a person u may be sent when one is
    addressed to them (owner-only notices: the owner's alone)."""
    access = access_for(s, u, a)
    if access is None:
        return frozenset()
    return _receives(access)


@functools.cache
def _receives(access: Access) -> frozenset[tuple[str, str]]:
    return frozenset((k, i) for k, i in EMAILS if access.reads_email(k, i))


def person_history(
    s: State, u: int, a: int, faults: Faults = NO_FAULTS
) -> frozenset[tuple[str, str]]:
    """notifications.selectors.email_history_for behind the emails permission: the
    entries of Email History (addressed to someone else) person u may open on account a.
    A scoped person reads support emails only when sent to them."""
    access = access_for(s, u, a)
    if access is None:
        return frozenset()
    return _history(access, faults)


@functools.cache
def _history(access: Access, faults: Faults) -> frozenset[tuple[str, str]]:
    if not access.has("emails"):
        return frozenset()
    if "history_ignores_kinds" in faults:
        return frozenset(EMAILS)
    out = set()
    for kind, item in EMAILS:
        if not access.reads_email(kind, item):
            continue
        if access.is_scoped and kind == SUPPORT:
            continue
        out.add((kind, item))
    return frozenset(out)


def contact_receives(s: State, a: int) -> frozenset[tuple[str, str]]:
    """policy.may_contact_receive: the emails the account's contact is sent."""
    c = s.contacts[a]
    if not c or not c.confirmed:
        return frozenset()
    out = set()
    for kind, item in EMAILS:
        if kind != c.kind:
            continue
        if c.sponsor != NO_ONE and c.sponsor not in s.owners[a]:
            sponsor = access_for(s, c.sponsor, a)
            if sponsor is None or (sponsor.is_scoped and kind in PER_ITEM_EMAIL_KINDS):
                continue
            if not sponsor.reads_email(kind, item):
                continue
        out.add((kind, item))
    return frozenset(out)


class Reach(NamedTuple):
    """Everything one state lets everyone reach, per account."""

    pages: tuple[tuple[frozenset[tuple[str, str]], ...], ...]  # [account][person]
    tokens: tuple[tuple[frozenset[tuple[str, str]], ...], ...]  # [account][creator]
    receives: tuple[tuple[frozenset[tuple[str, str]], ...], ...]  # [account][person]
    history: tuple[tuple[frozenset[tuple[str, str]], ...], ...]  # [account][person]
    contacts: tuple[frozenset[tuple[str, str]], ...]  # [account]


def reach(s: State, faults: Faults = NO_FAULTS) -> Reach:
    accounts = range(len(s.owners))
    people = range(len(s.logins))
    return Reach(
        pages=tuple(tuple(person_pages(s, u, a, faults) for u in people) for a in accounts),
        tokens=tuple(tuple(token_endpoints(s, a, c, faults) for c in people) for a in accounts),
        receives=tuple(tuple(person_receives(s, u, a) for u in people) for a in accounts),
        history=tuple(tuple(person_history(s, u, a, faults) for u in people) for a in accounts),
        contacts=tuple(contact_receives(s, a) for a in accounts),
    )
