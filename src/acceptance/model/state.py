"""The model's state: immutable tuples, so states hash, compare and share structure.

A missing record is ``NONE`` (an empty tuple: falsy, and smaller than any record, so
states compare as plain tuples for the canonical form). Times are kept relative to the
clock: ``ttl`` is the number of ticks left (0: the deadline has passed, ``expires_at <=
now``; -1: no deadline), so two states that differ only by the clock are one state.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any, NamedTuple

from .catalogue import ALL_CODES, normalise

USERS: tuple[int, ...] = (0, 1, 2)
ACCOUNTS: tuple[int, ...] = (0, 1)
NO_TTL = -1
NO_ONE = -1


class Member(NamedTuple):
    """Membership: a sub-account's access (the owner never holds one)."""

    perms: tuple[str, ...]
    scope: tuple[str, ...]
    status: str  # active | revoked | expired (the worker's record of an expiry)
    ttl: int  # access expiry
    # Revoked after the account's latest transfer offer was made (``revoked_at >=
    # transfer.created_at`` in ownership_transfer_accept).
    revoked_since_offer: bool


class Invite(NamedTuple):
    """The latest invitation of one address to one account, and its link."""

    status: str  # pending | accepted | cancelled | expired
    perms: tuple[str, ...]
    ttl: int
    # A link to this address and account that no longer admits anyone exists (a resent-
    # over link, or the link of an earlier invitation this one replaced).
    old_link: bool


class Transfer(NamedTuple):
    """The account's latest ownership transfer offer, and its link."""

    status: str  # pending | accepted | cancelled | expired
    to: int
    stays: bool  # former_owner_stays
    ttl: int
    old_link: bool  # an earlier offer's link exists (it admits nobody)


class Token(NamedTuple):
    """A personal API token (one slot per creator and account in the model)."""

    perms: tuple[str, ...]
    scope: tuple[str, ...]
    as_owner: bool  # created_as_owner
    manages_users: bool
    revoked: bool  # revoked_at set (revoked, or voided)
    ttl: int
    # Ghost variable (not in the app): its creator's access ended at some point since the
    # token was made. "A token dies with its creator's access".
    orphaned: bool


class Contact(NamedTuple):
    """A secondary contact (one per account in the model) receiving one kind."""

    kind: str
    confirmed: bool
    sponsor: int  # kind_sponsors: the sub-account who chose the kind, or NO_ONE
    # The confirmation link's ticks left (contact_for_token: as long as an invitation's;
    # 0: expired); NO_TTL once confirmed.
    ttl: int = NO_TTL


class Absent(NamedTuple):
    """No record."""


NONE: Any = Absent()


class State(NamedTuple):
    owners: tuple[tuple[int, ...], ...]  # per account: its owners (exactly one, we check)
    logins: tuple[bool, ...]  # per person: has a login
    members: tuple[tuple[Member, ...], ...]  # [account][person]
    invites: tuple[tuple[Invite, ...], ...]  # [account][person invited]
    transfers: tuple[Transfer, ...]  # [account]
    tokens: tuple[tuple[Token, ...], ...]  # [account][creator]
    contacts: tuple[Contact, ...]  # [account]
    closing: tuple[str, ...]  # per account: open | requested | closed


def initial() -> State:
    """Person 0 owns account 0, person 1 owns account 1, person 2 has no login yet."""
    empty_row = (NONE, NONE, NONE)
    return State(
        owners=((0,), (1,)),
        logins=(True, True, False),
        members=(empty_row, empty_row),
        invites=(empty_row, empty_row),
        transfers=(NONE, NONE),
        tokens=(empty_row, empty_row),
        contacts=(NONE, NONE),
        closing=("open", "open"),
    )


def set_row(rows: tuple[tuple[Any, ...], ...], a: int, u: int, value: Any) -> Any:
    row = rows[a]
    new_row = (*row[:u], value, *row[u + 1 :])
    return (*rows[:a], new_row, *rows[a + 1 :])


def set_at(values: tuple[Any, ...], i: int, value: Any) -> Any:
    return (*values[:i], value, *values[i + 1 :])


FORMER_OWNER_GRANT = normalise(ALL_CODES)  # _move_ownership: All Permissions


# --- symmetry: relabel people and accounts ---------------------------------------------

PERMUTATIONS: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = tuple(
    (p, q) for p in itertools.permutations(USERS) for q in itertools.permutations(ACCOUNTS)
)


def _inverse(p: tuple[int, ...]) -> tuple[int, ...]:
    out = [0] * len(p)
    for i, j in enumerate(p):
        out[j] = i
    return tuple(out)


# Each relabelling with its inverses: new[p[u]] = old[u], so new[v] = old[p_inv[v]].
_RELABELLINGS = tuple((p, q, _inverse(p), _inverse(q)) for p, q in PERMUTATIONS)


def _relabel(s: State, p: tuple[int, ...], pi: tuple[int, ...], qi: tuple[int, ...]) -> State:
    """The world with person u called p[u] and account b called what qi says (new b =
    old qi[b]); `pi` is the inverse of `p`. Written out for 3 people and 2 accounts: the
    explorer calls it for every state it meets."""
    v0, v1, v2 = pi
    b0, b1 = qi
    m, i, t = s.members, s.invites, s.tokens
    m0, m1, i0, i1, t0, t1 = m[b0], m[b1], i[b0], i[b1], t[b0], t[b1]
    tr0, tr1 = s.transfers[b0], s.transfers[b1]
    c0, c1 = s.contacts[b0], s.contacts[b1]
    o0, o1 = s.owners[b0], s.owners[b1]
    return State(
        owners=(
            (p[o0[0]],) if len(o0) == 1 else tuple(sorted(p[u] for u in o0)),
            (p[o1[0]],) if len(o1) == 1 else tuple(sorted(p[u] for u in o1)),
        ),
        logins=(s.logins[v0], s.logins[v1], s.logins[v2]),
        members=((m0[v0], m0[v1], m0[v2]), (m1[v0], m1[v1], m1[v2])),
        invites=((i0[v0], i0[v1], i0[v2]), (i1[v0], i1[v1], i1[v2])),
        transfers=(
            tr0._replace(to=p[tr0.to]) if tr0 else tr0,
            tr1._replace(to=p[tr1.to]) if tr1 else tr1,
        ),
        tokens=((t0[v0], t0[v1], t0[v2]), (t1[v0], t1[v1], t1[v2])),
        contacts=(
            c0._replace(sponsor=p[c0.sponsor]) if c0 and c0.sponsor != NO_ONE else c0,
            c1._replace(sponsor=p[c1.sponsor]) if c1 and c1.sponsor != NO_ONE else c1,
        ),
        closing=(s.closing[b0], s.closing[b1]),
    )


def relabel(s: State, p: tuple[int, ...], q: tuple[int, ...]) -> State:
    """The same world with person u called p[u] and account a called q[a]."""
    return _relabel(s, p, _inverse(p), _inverse(q))


def _signature(s: State, u: int) -> tuple[Any, ...]:
    """What person u is in the world, whatever the labels: relabelling the world does not
    change it (the accounts' order is forgotten by sorting)."""
    per_account = sorted(
        (
            u in s.owners[a],
            s.members[a][u],
            s.invites[a][u],
            s.tokens[a][u],
            bool(s.transfers[a]) and s.transfers[a].to == u,
            bool(s.contacts[a]) and s.contacts[a].sponsor == u,
        )
        for a in ACCOUNTS
    )
    return (s.logins[u], tuple(per_account))


def _candidates(s: State) -> list[tuple[int, ...]]:
    """The person relabellings that sort people by signature (every order of people
    with equal signatures): a set of relabellings that is the same for every labelling
    of the world, so the least state they give is the same too."""
    signatures = [_signature(s, u) for u in USERS]
    order = sorted(USERS, key=lambda u: signatures[u])
    groups: list[list[int]] = []
    for u in order:
        if groups and signatures[groups[-1][0]] == signatures[u]:
            groups[-1].append(u)
        else:
            groups.append([u])
    out: list[tuple[int, ...]] = []
    for choice in itertools.product(*(itertools.permutations(g) for g in groups)):
        ordered = [u for g in choice for u in g]
        p = [0] * len(USERS)
        for position, u in enumerate(ordered):
            p[u] = position
        out.append(tuple(p))
    return out


_ACCOUNT_INVERSES = tuple(_inverse(q) for q in itertools.permutations(ACCOUNTS))


_SAME_ACCOUNTS = (tuple(ACCOUNTS),)


def canonical(s: State, swap_accounts: bool = True) -> State:
    """The least of the state's relabellings that sort people by signature: every
    relabelling of a world behaves alike (no rule names a person or an account), so one
    of them stands for all. `swap_accounts=False` keeps the accounts' labels (when the
    accounts are not explored alike)."""
    accounts = _ACCOUNT_INVERSES if swap_accounts else _SAME_ACCOUNTS
    return min(_relabel(s, p, _inverse(p), qi) for p in _candidates(s) for qi in accounts)


def canonical_full(s: State) -> State:
    """The least of all 12 relabellings (a slower reference for the tests)."""
    return min(_relabel(s, p, pi, qi) for p, _q, pi, qi in _RELABELLINGS)


def key(s: State, swap_accounts: bool = True) -> bytes:
    """A compact fingerprint of the state's canonical form (128 bits)."""
    return hashlib.blake2b(repr(canonical(s, swap_accounts)).encode(), digest_size=16).digest()
