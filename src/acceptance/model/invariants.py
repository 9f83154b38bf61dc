"""The invariants, checked after every step. They are written against the state and the
published tables (the route table ``clientarea.access_table``, the channel table
``clientarea.channel_table``), not against ``reach``: ``reach`` mirrors how the app's
policy computes an answer, these say what the answer must be, so a mistake in one is
caught by the other.

A state invariant returns the list of its violations (empty when it holds); a step
invariant is given the state before, the action, its outcome and the state after.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from clientarea.access_table import ROUTES
from clientarea.channel_table import READS, RECEIVES

from .catalogue import ALL_CODES, EMAILS, EVERYTHING, ITEM_OF_EMAIL_KIND, SUPPORT, expand
from .reach import NO_FAULTS, Faults, Reach, reach
from .routes import item_of, rule_of
from .rules import Action, Outcome
from .state import NO_ONE, NO_TTL, State, set_row

# --- what a person is granted, read from the state ----------------------------------------


class Grant(NamedTuple):
    owner: bool
    perms: frozenset[str]  # every permission held (implied ones included)
    items: frozenset[str] | None  # the items reached; None: every item


def grant(s: State, u: int, a: int) -> Grant | None:
    """DESIGN: the owner holds everything; a sub-account holds its membership's grant
    while it is active and not past its expiry; nobody reaches a closed account, nor
    anyone without a login."""
    if s.closing[a] == "closed" or not s.logins[u]:
        return None
    if s.owners[a] == (u,):
        return Grant(True, ALL_CODES, None)
    m = s.members[a][u]
    if m and m.status == "active" and (m.ttl == NO_TTL or m.ttl > 0):
        return Grant(False, expand(m.perms), None if m.scope == EVERYTHING else frozenset(m.scope))
    return None


def _covers_item(items: frozenset[str] | None, item: str) -> bool:
    return item == "" or items is None or item in items


# The route table's page routes that need an account: (rule, item).
_PAGE_ROUTES = tuple(
    (rule, item_of(route))
    for route in ROUTES
    if (rule := rule_of(route)) is not None and not rule.startswith("token")
)
_API_ROUTES = tuple(
    (route.rule, item_of(route)) for route in ROUTES if route.rule.startswith("token")
)


@functools.cache
def expected_pages(g: Grant | None) -> frozenset[tuple[str, str]]:
    """Every route of the route table the grant allows, as (rule, item) groups."""
    if g is None:
        return frozenset()
    out = set()
    for rule, item in _PAGE_ROUTES:
        if rule == "owner":
            allowed = g.owner
        elif rule == "account":
            allowed = True
        else:
            codes = rule.removeprefix("permission:").split("+")
            allowed = all(code in g.perms for code in codes)
        if allowed and _covers_item(g.items, item):
            out.add((rule, item))
    return frozenset(out)


def expected_token(s: State, a: int, c: int) -> frozenset[tuple[str, str]]:
    """DESIGN: a token carries at most its creator's grant (permissions ∩ scope) and
    dies with its creator's access; one made as the owner dies when ownership moves;
    the Users power is the owner's, chosen for a token made as owner."""
    t = s.tokens[a][c]
    creator = grant(s, c, a)
    if not t or t.revoked or t.ttl == 0 or creator is None or (t.as_owner and not creator.owner):
        return frozenset()
    perms = expand(t.perms) & creator.perms
    token_items = None if t.scope == EVERYTHING else frozenset(t.scope)
    out = set()
    for rule, item in _API_ROUTES:
        if rule == "token":
            out.add((rule, ""))
        elif rule == "token:owner":
            if t.manages_users and t.as_owner and creator.owner:
                out.add((rule, ""))
        elif (
            rule.startswith("token:")
            and rule.removeprefix("token:") in perms
            and _covers_item(token_items, item)
            and _covers_item(creator.items, item)
        ):
            out.add((rule, item))
    return frozenset(out)


def _role_kinds(table: dict[str, frozenset[str]], g: Grant, prefix: str) -> frozenset[str]:
    if g.owner:
        return table["owner"]
    kinds: set[str] = set()
    for code in g.perms:
        kinds |= table.get(f"{prefix}{code}", frozenset())
    return frozenset(kinds)


def _by_item(kinds: frozenset[str], g: Grant) -> frozenset[tuple[str, str]]:
    """The model's emails of these kinds; product and domain emails only about an item
    the grant reaches (channel table: a scoped sub-account is sent and reads them only
    about an item in its scope)."""
    return frozenset(
        (k, i)
        for k, i in EMAILS
        if k in kinds and (k not in ITEM_OF_EMAIL_KIND or _covers_item(g.items, i))
    )


@functools.cache
def expected_receives(g: Grant | None) -> frozenset[tuple[str, str]]:
    """channel_table.RECEIVES: the owner's row, or the union of the one-permission rows;
    ended access ("revoked", "expired") receives nothing."""
    if g is None:
        return frozenset()
    return _by_item(_role_kinds(RECEIVES, g, "only:"), g)


@functools.cache
def expected_history(g: Grant | None) -> frozenset[tuple[str, str]]:
    """channel_table.READS: Email History needs View Email History; with it, the
    "emails+<code>" rows. A scoped person reads support emails only when sent to them
    (email_history_for), so not the model's (addressed to someone else)."""
    if g is None or not (g.owner or "emails" in g.perms):
        return frozenset()
    kinds = set(READS["owner"] if g.owner else READS["only:emails"])
    if not g.owner:
        for code in g.perms:
            kinds |= READS.get(f"emails+{code}", frozenset())
        if g.items is not None:
            kinds.discard(SUPPORT)
    return _by_item(frozenset(k for k in kinds if not k.startswith("personal")), g)


def expected_contact(s: State, a: int) -> frozenset[tuple[str, str]]:
    """channel_table: a contact receives nothing until it confirms; a kind a sub-account
    chose is sent only while that person's own access covers it (and never the per-item
    kinds while that person is scoped); the owner's choice stands."""
    c = s.contacts[a]
    if not c or not c.confirmed:
        return frozenset()
    mine = frozenset((k, i) for k, i in EMAILS if k == c.kind)
    if c.sponsor == NO_ONE or s.owners[a] == (c.sponsor,):
        return mine
    g = grant(s, c.sponsor, a)
    if g is None or (g.items is not None and c.kind in ("product", "domain", "support")):
        return frozenset()
    return mine & expected_receives(g)


# --- state invariants ---------------------------------------------------------------------

Violations = list[str]


def one_owner(s: State, r: Reach, a: int) -> Violations:
    """Every account has exactly one owner, who holds no membership of it, and exactly
    one person reaches its owner-only pages (none once it is closed)."""
    owners = s.owners[a]
    if len(owners) != 1:
        return [f"A{a} has owners {list(owners)}"]
    out = []
    if s.members[a][owners[0]]:
        out.append(f"A{a}'s owner P{owners[0]} holds a membership of it")
    reaching = [u for u, pages in enumerate(r.pages[a]) if ("owner", "") in pages]
    if len(reaching) > 1 or (reaching and reaching != list(owners)):
        out.append(f"A{a}'s owner pages reached by {reaching}")
    return out


def reach_is_grant(s: State, r: Reach, a: int) -> Violations:
    """A person's reach (pages, email sent to them, Email History) is exactly their grant
    ∩ scope, and nothing for ended access."""
    out = []
    for u in range(len(s.logins)):
        g = grant(s, u, a)
        for what, got, want in (
            ("pages", r.pages[a][u], expected_pages(g)),
            ("emails", r.receives[a][u], expected_receives(g)),
            ("Email History", r.history[a][u], expected_history(g)),
        ):
            if got != want:
                out.append(
                    f"P{u} on A{a} {what}: extra {sorted(got - want)} missing {sorted(want - got)}"
                )
    if r.contacts[a] != expected_contact(s, a):
        out.append(f"A{a}'s contact receives {sorted(r.contacts[a])}")
    return out


def token_within_creator(s: State, r: Reach, a: int) -> Violations:
    """A token reaches at most its creator's current grant, exactly its own grant ∩ the
    creator's, and nothing once dead."""
    out = []
    for c in range(len(s.logins)):
        got = r.tokens[a][c]
        g = grant(s, c, a)
        pages = expected_pages(g)
        for rule, item in got:
            code = rule.removeprefix("token:")
            if code in ("token", "owner"):
                ok = g is not None and (code == "token" or g.owner)
            else:
                ok = (f"permission:{code}", item) in pages or (
                    g is not None and code in g.perms and _covers_item(g.items, item)
                )
            if not ok:
                out.append(f"P{c}'s token on A{a} reaches {rule} {item} beyond its creator")
        want = expected_token(s, a, c)
        if got != want:
            out.append(
                f"P{c}'s token on A{a}: extra {sorted(got - want)} missing {sorted(want - got)}"
            )
    return out


def token_dies_with_creator(s: State, r: Reach, a: int) -> Violations:
    """A token whose creator's access ended at some point reaches nothing ever after
    (DESIGN: "a token dies with its creator's access")."""
    return [
        f"P{c}'s token on A{a} works again after its creator's access ended"
        for c, t in enumerate(s.tokens[a])
        if t and t.orphaned and r.tokens[a][c]
    ]


AccountInvariant = Callable[[State, Reach, int], Violations]

# Each invariant is about one account: it reads the people's logins, that account's
# records and what is reached in it, nothing of another account. That is what lets the
# one-account exploration speak for any number of accounts (``compose``).
ACCOUNT_INVARIANTS: dict[str, AccountInvariant] = {
    "one_owner": one_owner,
    "reach_is_grant": reach_is_grant,
    "token_within_creator": token_within_creator,
    # Once a known gap (a lapsed access extended before the worker ran revived its
    # tokens); the app now ends them first (membership_update), so it is an invariant.
    "token_dies_with_creator": token_dies_with_creator,
}


def _in_every_account(invariant: AccountInvariant) -> Callable[[State, Reach], Violations]:
    @functools.wraps(invariant)
    def check(s: State, r: Reach) -> Violations:
        return [v for a in range(len(s.owners)) for v in invariant(s, r, a)]

    return check


STATE_INVARIANTS: dict[str, Callable[[State, Reach], Violations]] = {
    name: _in_every_account(invariant) for name, invariant in ACCOUNT_INVARIANTS.items()
}

# Differences between DESIGN and the app that are checked and reported, not failed.
KNOWN_GAPS: dict[str, Callable[[State, Reach], Violations]] = {}


def mark_orphans(s: State) -> State:
    """Update the ghost variable: a token whose creator's access is gone (or who made it
    as the owner and owns the account no more) is orphaned for good."""
    for a, row in enumerate(s.tokens):
        for c, t in enumerate(row):
            if not t or t.orphaned or t.revoked:
                continue
            g = grant(s, c, a)
            if g is None or (t.as_owner and not g.owner):
                s = s._replace(tokens=set_row(s.tokens, a, c, t._replace(orphaned=True)))
    return s


# --- step invariants ----------------------------------------------------------------------


def _link_live_invite(s: State, a: int, u: int) -> bool:
    inv = s.invites[a][u]
    return bool(inv) and inv.status == "pending" and inv.ttl > 0


def step_violations(
    pre: State, act: Action, out: Outcome, post: State, faults: Faults = NO_FAULTS
) -> Violations:
    """Properties of one step: a refused action changes nothing; a dead link admits
    nobody; revoking ends the access; a revoked token reaches nothing; an accepted
    transfer leaves exactly the new owner."""
    v: Violations = []
    a = act.account
    if not out.ok:
        if out.state != pre:
            v.append(f"refused ({out.reason}) but changed the state")
        return v
    if act.name in ("accept", "accept_new") and not (
        _link_live_invite(pre, a, act.target) and act.actor == act.target
    ):
        v.append("a dead invitation link (or someone else's) admitted its holder")
    if act.name in ("accept_old_link", "transfer_accept_old_link"):
        v.append("a replaced link admitted its holder")
    if act.name == "transfer_accept":
        t = pre.transfers[a]
        if not (t and t.status == "pending" and t.ttl > 0 and act.actor == t.to):
            v.append("a dead transfer link (or someone else's) admitted its holder")
        if post.owners[a] != (act.actor,):
            v.append(f"after the transfer A{a} has owners {list(post.owners[a])}")
    if act.name in ("revoke", "api_revoke"):
        r = reach(post, faults)
        if r.pages[a][act.target] or r.tokens[a][act.target] or r.receives[a][act.target]:
            v.append(f"P{act.target} still reaches A{a} after Revoke Access")
    if act.name == "token_revoke" and reach(post, faults).tokens[a][act.target]:
        v.append(f"P{act.target}'s token on A{a} still works after it was revoked")
    if act.name == "cancel" and _link_live_invite(post, a, act.target):
        v.append("a cancelled invitation's link is still open")
    return v
