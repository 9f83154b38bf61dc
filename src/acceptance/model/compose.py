"""Why exploring one account proves the model for both accounts (and for more that start
as they do).

In the model, the accounts share nothing but the people. Three facts make that precise:

1. An action on account a (every action but the clock and the worker) is tried, allowed
   or refused, and changes a's records, by the people's logins and a's records alone; it
   changes no other account, and changes the logins only by giving one person one
   (accepting an invitation as a new person).
2. The clock and the worker change each account by that account's records alone.
3. What is reached in account a (pages, tokens, email, Email History, the contact), and
   every invariant about a (``invariants.ACCOUNT_INVARIANTS``), depends on the logins
   and a's records alone.

They hold by the way the rules, ``reach`` and the invariants are written, and are
checked two ways. ``blind_violations`` makes every other account's records unreadable
(any read raises) and acts on account a: for 1. and 3. that covers whatever the other
accounts hold, on every view it is run on, and ``make prove`` runs it on every state of
the one-account exploration but its deepest level, exactly the views the induction
below steps from. ``locality_violations`` replaces the other account's records (by its
records at the start, and by a copy of a's) on states of the both-accounts exploration,
for 2. and for the rest (``make test`` to depth 3 and on random walks; ``make prove``
to depth 5).

Call account a's *view* the logins with a's records. By induction on the steps: after n
steps on the model's two accounts, each account's view is one the one-account
exploration reaches in at most n steps, where a login given through another account is
one step (``rules.login_elsewhere``) and a step on another account that leaves the view
as it was is none; and by 3., each invariant about the account holds in the whole state
exactly when it holds there. So the one-account exploration with ``login_elsewhere``, to
depth n, proves every invariant after every sequence of n steps on both accounts. Step
invariants are about the account acted on, so 1. carries them over too. Nothing in the
argument counts the accounts: it goes through for more accounts whose rules are these,
as long as each starts as A0 and A1 do (owned by a person who has a login, nothing else
in it) and the people are the same three, P2 without a login at the start (an account
owned by P2 from the start would be a login given at step 0: one step more).

The people are not composed this way: they are fixed at three, and the symmetry between
them is only used to merge states that are the same up to relabelling
(``state.canonical``). This is a theorem about the model; the app is held to the model
by the conformance replay, on the states it replays.

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
from .reach import (
    NO_FAULTS,
    Faults,
    Reach,
    contact_receives,
    person_history,
    person_pages,
    person_receives,
    reach,
    token_endpoints,
)
from .rules import actions, apply
from .state import ACCOUNTS, USERS, State, initial, key, set_at

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


class ReadAnotherAccount(AssertionError):
    """Something about one account read another account's records."""


class _Unreadable:
    """Stands for another account's records: any read of it raises."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise ReadAnotherAccount("read another account's records")

    __getattr__ = __getitem__ = __iter__ = __len__ = __bool__ = __contains__ = _refuse
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _refuse


UNREADABLE: Any = _Unreadable()


def _blind(s: State, a: int) -> State:
    for b in ACCOUNTS:
        if b != a:
            s = with_records(s, b, tuple(UNREADABLE for _ in RECORDS))
    return s


def _logins_changed_badly(before: State, after: State) -> bool:
    """Fact 1: the logins stay, or one person without a login gets one."""
    gained = [u for u in USERS if after.logins[u] != before.logins[u]]
    return len(gained) > 1 or any(not after.logins[u] for u in gained)


def blind_violations(s: State, a: int, faults: Faults = NO_FAULTS) -> list[str]:
    """Facts 1 and 3 in state `s` with every other account's records unreadable: what
    is reached in a, the invariants about a, the actions tried on a and the outcome of
    each (its refusal, a's records and the logins after it, the other accounts left
    alone) come out as in `s`, and none of them reads another account."""
    out: list[str] = []
    blind = _blind(s, a)
    r = reach(s, faults)
    people = range(len(s.logins))
    mine = {
        "pages": tuple(person_pages(s, u, a, faults) for u in people),
        "tokens": tuple(token_endpoints(s, a, c, faults) for c in people),
        "receives": tuple(person_receives(s, u, a) for u in people),
        "history": tuple(person_history(s, u, a, faults) for u in people),
        "contacts": contact_receives(s, a),
    }
    try:
        seen = {
            "pages": tuple(person_pages(blind, u, a, faults) for u in people),
            "tokens": tuple(token_endpoints(blind, a, c, faults) for c in people),
            "receives": tuple(person_receives(blind, u, a) for u in people),
            "history": tuple(person_history(blind, u, a, faults) for u in people),
            "contacts": contact_receives(blind, a),
        }
    except ReadAnotherAccount:
        return [f"what is reached in A{a} reads another account"]
    out += [
        f"what is reached in A{a} ({part}) differs" for part in mine if seen[part] != mine[part]
    ]
    # The invariants see the other accounts' reach unreadable too.
    blind_reach = Reach(
        *(
            tuple(part[a] if b == a else UNREADABLE for b in ACCOUNTS)
            for part in (r.pages, r.tokens, r.receives, r.history, r.contacts)
        )
    )
    for name, invariant in ACCOUNT_INVARIANTS.items():
        try:
            if invariant(blind, blind_reach, a) != invariant(s, r, a):
                out.append(f"the invariant {name} about A{a} differs")
        except ReadAnotherAccount:
            out.append(f"the invariant {name} about A{a} reads another account")
    offered = [act for act in actions(s, (a,)) if act.account == a]
    try:
        if [act for act in actions(blind, (a,)) if act.account == a] != offered:
            out.append(f"the actions tried on A{a} differ")
    except ReadAnotherAccount:
        return [*out, f"the actions tried on A{a} read another account"]
    for act in offered:
        done = apply(s, act, faults)
        try:
            seen_done = apply(blind, act, faults)
        except ReadAnotherAccount:
            out.append(f"'{act.describe()}' reads another account")
            continue
        if (done.ok, done.reason) != (seen_done.ok, seen_done.reason):
            out.append(f"whether '{act.describe()}' is refused differs")
            continue
        after, seen_after = done.state, seen_done.state
        if view(after, a) != view(seen_after, a):
            out.append(f"what '{act.describe()}' does to A{a} differs")
        if _logins_changed_badly(s, after):
            out.append(f"'{act.describe()}' changed the logins otherwise than by giving one")
        for b in ACCOUNTS:
            if b != a and any(x is not UNREADABLE for x in records_of(seen_after, b)):
                out.append(f"'{act.describe()}' wrote to A{b}")
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
        if _logins_changed_badly(s, after):
            out.append(f"'{act.describe()}' changed the logins otherwise than by giving one")
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
    blind_to: int = -1,
    views_to: int | None = None,
    elsewhere: bool | None = None,
    progress: Any = None,
) -> tuple[Result, dict[bytes, int], list[str]]:
    """Explore (one account with ``login_elsewhere``, or both accounts) and note the
    least depth each account view is reached at; with `check_locality_to`, check facts
    1-3 on every state met up to that depth. Returns the exploration, the views and the
    first locality violations found (with the sequence leading to them); with
    `blind_to`, ``blind_violations`` on every state met up to that depth. `elsewhere`
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
        if not broken and d <= max(check_locality_to, blind_to):
            wrong = locality_violations(state, faults) if d <= check_locality_to else []
            if d <= blind_to:
                wrong += [v for a in active for v in blind_violations(state, a, faults)]
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
