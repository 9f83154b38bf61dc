"""Why exploring one account proves the model for both accounts, and for more.

The accounts share nothing but the people. Three facts make that precise; they hold by
the way the rules, ``reach`` and the invariants are written, and ``locality_violations``
checks them on every state the both-accounts exploration meets (``make test`` to depth
3 and on random walks of 20 steps, ``make prove`` to depth 5):

1. An action on account a (every action but the clock and the worker) is tried, allowed
   or refused, and changes a's records, by the people's logins and a's records alone; it
   changes no other account, and changes the logins only by giving someone one (accepting
   an invitation as a new person).
2. The clock and the worker change each account by that account's records alone.
3. What is reached in account a (pages, tokens, email, Email History, the contact), and
   every invariant about a (``invariants.ACCOUNT_INVARIANTS``), depends on the logins
   and a's records alone.

Call account a's *view* the logins with a's records. By induction on the steps: after n
steps on the model's two accounts, each account's view is one the one-account
exploration reaches in at most n steps, where a login given through another account is
one step (``rules.login_elsewhere``) and a step on another account that leaves the view
as it was is none; and by 3., each invariant about the account holds in the whole state
exactly when it holds there. So the one-account exploration with ``login_elsewhere``, to
depth n, proves every invariant after every sequence of n steps on both accounts. Step
invariants are about the account acted on, so 1. carries them over too. Nothing in the
argument counts the accounts: with the same three people and more accounts, whose rules
are those of these two, it goes through unchanged (1.-3. are checked for two).

The people are not composed this way: they are fixed at three, each with a login or not,
and the symmetry between them is only used to merge states that are the same up to
relabelling (``state.canonical``).

``uncovered`` checks the conclusion itself where both explorations run: every view of
every state the both-accounts exploration reaches is reached by the one-account
exploration at no greater depth.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from .explore import Result, explore
from .invariants import ACCOUNT_INVARIANTS, mark_orphans
from .reach import NO_FAULTS, Faults, Reach, reach
from .rules import actions, apply
from .state import ACCOUNTS, State, initial, key, set_at

# An account's records in the state (everything but the logins).
RECORDS = ("owners", "members", "invites", "transfers", "tokens", "contacts", "closing")


def records_of(s: State, a: int) -> tuple[Any, ...]:
    return tuple(getattr(s, field)[a] for field in RECORDS)


def with_records(s: State, a: int, records: tuple[Any, ...]) -> State:
    """`s` with account a's records replaced."""
    return s._replace(
        **{
            field: set_at(getattr(s, field), a, value)
            for field, value in zip(RECORDS, records, strict=True)
        }
    )


def view(s: State, a: int) -> tuple[Any, ...]:
    """Account a as its own people see it: the logins and a's records."""
    return (s.logins, records_of(s, a))


def view_key(s: State, a: int) -> bytes:
    """A fingerprint of account a's view, the same for every labelling of the people:
    the canonical form of the state whose every account holds a's records."""
    records = records_of(s, a)
    twin = s
    for b in ACCOUNTS:
        twin = with_records(twin, b, records)
    return key(twin, swap_accounts=False)


_INITIAL = initial()


def locality_violations(s: State, faults: Faults = NO_FAULTS) -> list[str]:
    """Facts 1-3 in state `s`: for each account a, the other account's records are
    replaced (by its records at the start, and by a copy of a's), and everything about a
    must come out the same: what is reached, the invariants, the actions tried on a, and
    the outcome of each, of the clock and of the worker (actions on a must leave the
    other account as it was)."""
    out: list[str] = []
    r = reach(s, faults)
    for a in ACCOUNTS:
        for b in ACCOUNTS:
            if b == a:
                continue
            for records in (records_of(_INITIAL, b), records_of(s, a)):
                other = with_records(s, b, records)
                if other != s:
                    out += _differences(s, other, a, r, faults)
    return out


def _differences(s: State, other: State, a: int, r: Reach, faults: Faults) -> list[str]:
    """How account a fares differently in `s` and in `other` (the same view of a)."""
    out: list[str] = []
    r2 = reach(other, faults)
    for part in Reach._fields:
        if getattr(r, part)[a] != getattr(r2, part)[a]:
            out.append(f"what is reached in A{a} ({part}) depends on another account")
    for name, invariant in ACCOUNT_INVARIANTS.items():
        if invariant(s, r, a) != invariant(other, r2, a):
            out.append(f"the invariant {name} about A{a} depends on another account")
    offered = list(actions(s, (a,)))
    if offered != list(actions(other, (a,))):
        out.append(f"the actions tried on A{a} depend on another account")
    for act in offered:
        mine, theirs = apply(s, act, faults), apply(other, act, faults)
        on_account = act.account >= 0
        if on_account and (mine.ok, mine.reason) != (theirs.ok, theirs.reason):
            out.append(f"whether '{act.describe()}' is refused depends on another account")
            continue
        after = mark_orphans(mine.state) if mine.ok else s
        after_other = mark_orphans(theirs.state) if theirs.ok else other
        if view(after, a) != view(after_other, a):
            out.append(f"what '{act.describe()}' does to A{a} depends on another account")
        if on_account:
            for before, done in ((s, after), (other, after_other)):
                for b in ACCOUNTS:
                    if b != a and records_of(done, b) != records_of(before, b):
                        out.append(f"'{act.describe()}' changed A{b}")
    return out


def views(
    depth: int,
    *,
    one_account: bool,
    faults: Faults = NO_FAULTS,
    check_locality_to: int = -1,
    views_to: int | None = None,
    elsewhere: bool | None = None,
    progress: Any = None,
) -> tuple[Result, dict[bytes, int], list[str]]:
    """Explore (one account with ``login_elsewhere``, or both accounts) and note the
    least depth each account view is reached at; with `check_locality_to`, check facts
    1-3 on every state met up to that depth. Returns the exploration, the views and the
    first locality violations found (with the sequence leading to them). `elsewhere`
    (default: with one account) offers ``login_elsewhere``; views are noted to
    `views_to` (default: every depth)."""
    found: dict[bytes, int] = {}
    broken: list[str] = []
    active = (0,) if one_account else ACCOUNTS

    last = depth if views_to is None else views_to

    def note(path: list[Any], state: State) -> None:
        d = len(path)
        for a in active if d <= last else ():
            k = view_key(state, a)
            if found.get(k, depth + 1) > d:
                found[k] = d
        if not broken and d <= check_locality_to:
            wrong = locality_violations(state, faults)
            if wrong:
                steps = "; ".join(act.describe() for act in path) or "(the start)"
                broken.extend([*wrong[:3], f"after: {steps}"])

    result = explore(
        depth,
        faults,
        on_state=note,
        active=active,
        elsewhere=one_account if elsewhere is None else elsewhere,
        progress=progress,
    )
    return result, found, broken


def uncovered(both: dict[bytes, int], one: dict[bytes, int]) -> int:
    """How many views of the both-accounts exploration the one-account exploration did
    not reach at the same depth or less (0: the composition holds as far as both ran)."""
    return sum(1 for k, d in both.items() if one.get(k, d + 1) > d)


def within(views_found: dict[bytes, int], depth: int) -> dict[bytes, int]:
    return {k: d for k, d in views_found.items() if d <= depth}


def walk_locality(
    walks: int, length: int, seed: int, faults: Faults = NO_FAULTS
) -> Iterable[tuple[list[str], list[str]]]:
    """Facts 1-3 on random sequences deeper than the exploration: yields (violations,
    the sequence) for each state where some are found."""
    rng = random.Random(seed)
    for _ in range(walks):
        s, steps = _INITIAL, []
        for _ in range(length):
            moves = [act for act in actions(s) if apply(s, act, faults).ok]
            if not moves:
                break
            act = rng.choice(moves)
            s = mark_orphans(apply(s, act, faults).state)
            steps.append(act.describe())
            wrong = locality_violations(s, faults)
            if wrong:
                yield wrong, list(steps)
