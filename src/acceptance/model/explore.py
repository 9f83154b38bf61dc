"""Breadth-first exploration of every action sequence of the model up to a depth.

States are deduplicated by their canonical form (people and accounts relabelled, see
``state.canonical``), so each distinct state is expanded once, at the depth it is first
reached. Every state invariant is checked on every distinct state, every step invariant
on every step tried (refused ones included). The first violation stops the search and is
reported with the shortest sequence leading to it (breadth-first: none is shorter).

    PYTHONPATH=src python -m acceptance.model.explore --depth 6
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from .catalogue import expand
from .invariants import KNOWN_GAPS, STATE_INVARIANTS, mark_orphans, step_violations
from .reach import FAULTS, NO_FAULTS, Faults, reach
from .rules import Action, Outcome, actions, apply
from .state import ACCOUNTS, State, initial, key


@dataclass
class Failure:
    invariant: str
    message: str
    sequence: list[Action]

    def describe(self) -> str:
        steps = "\n".join(f"  {i + 1}. {a.describe()}" for i, a in enumerate(self.sequence))
        return f"{self.invariant}: {self.message}\nafter {len(self.sequence)} steps:\n{steps}"


@dataclass
class Result:
    depth: int  # the depth fully explored
    states: int = 0  # distinct states (canonical forms)
    transitions: int = 0  # steps tried, refused ones included
    applied: int = 0  # steps that changed nothing or something, not refused
    seconds: float = 0.0
    per_depth: list[tuple[int, int, int, float]] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    failure: Failure | None = None
    gaps: dict[str, Failure] = field(default_factory=dict)


def events_of(pre: State, act: Action, out: Outcome, post: State) -> list[str]:
    """What kind of step this was (to show the explorer reached every kind of state)."""
    name = act.name
    if not out.ok:
        if name in ("accept", "accept_new"):
            inv = pre.invites[act.account][act.target]
            if inv.status != "pending":
                return [f"link refused: invitation {inv.status}"]
            if inv.ttl == 0:
                return ["link refused: invitation expired"]
            return ["link refused: someone else"]
        if name == "accept_old_link":
            return ["link refused: resent over"]
        if name == "transfer_accept_old_link":
            return ["link refused: earlier transfer"]
        return [f"refused: {name}"]
    out_events = [name]
    if name == "transfer_accept":
        stays = pre.transfers[act.account].stays
        out_events.append(f"transfer accepted ({'stays' if stays else 'leaves'})")
    for a, row in enumerate(post.tokens):
        for c, t in enumerate(row):
            before = pre.tokens[a][c]
            if t and before and t.revoked and not before.revoked and name != "token_revoke":
                out_events.append(f"token voided by {name}")
    if name == "edit":
        a, u = act.account, act.target
        # Narrowed for good: what it carries is stored smaller (token_narrow_to_grant).
        before, t = pre.tokens[a][u], post.tokens[a][u]
        if t and before and not t.revoked and expand(t.perms) < expand(before.perms):
            out_events.append("token narrowed by its creator's grant")
    if name == "worker":
        for a, row in enumerate(post.members):
            for u, m in enumerate(row):
                if m and m.status == "expired" and pre.members[a][u].status != "expired":
                    out_events.append("access expired (worker)")
    return out_events


def explore(
    depth: int,
    faults: Faults = NO_FAULTS,
    *,
    stop_at_first: bool = True,
    progress: Callable[[str], None] | None = None,
    on_state: Callable[[list[Action], State], None] | None = None,
    active: tuple[int, ...] = ACCOUNTS,
    elsewhere: bool = False,
) -> Result:
    """Explore every sequence of up to `depth` actions. `on_state` is called with the
    shortest sequence to each distinct state and the state (the conformance step replays
    the sequence on the real app and compares its answers with ``reach`` of the state).
    `active`: the accounts actions are tried on (the others stay as they are, and keep
    their labels: only people are relabelled then). `elsewhere`: people may also get a
    login through an account outside the exploration (see ``compose``)."""
    swap_accounts = tuple(active) == tuple(ACCOUNTS)
    start = time.monotonic()
    result = Result(depth=0)
    root = initial()
    seen: set[bytes] = {key(root, swap_accounts)}
    # For each distinct state: (its parent's index, the action from the parent).
    parents: list[tuple[int, Action | None]] = [(-1, None)]
    frontier: list[tuple[State, int]] = [(root, 0)]
    result.states = 1

    def path(index: int) -> list[Action]:
        steps: list[Action] = []
        while index > 0:
            parent, act = parents[index]
            assert act is not None
            steps.append(act)
            index = parent
        return steps[::-1]

    def check_state(s: State, index: int) -> bool:
        r = reach(s, faults)
        for name, invariant in STATE_INVARIANTS.items():
            found = invariant(s, r)
            if found:
                result.failure = Failure(name, "; ".join(found[:3]), path(index))
                return False
        for name, invariant in KNOWN_GAPS.items():
            found = invariant(s, r)
            if found and name not in result.gaps:
                result.gaps[name] = Failure(name, "; ".join(found[:3]), path(index))
        return True

    if on_state is not None:
        on_state([], root)
    if not check_state(root, 0):
        return result
    for d in range(1, depth + 1):
        new_frontier: list[tuple[State, int]] = []
        # The states this level met, as labelled: most duplicates are the very same state
        # (actions on the two accounts in either order), found here without the canonical
        # form.
        met: set[State] = set()
        for s, index in frontier:
            for act in actions(s, active, elsewhere=elsewhere):
                out = apply(s, act, faults)
                result.transitions += 1
                post = mark_orphans(out.state) if out.ok else out.state
                found = step_violations(s, act, out, post, faults)
                if found:
                    result.failure = Failure("step", "; ".join(found), [*path(index), act])
                    if stop_at_first:
                        result.seconds = time.monotonic() - start
                        return result
                for event in events_of(s, act, out, post):
                    result.events[event] += 1
                if not out.ok:
                    continue
                result.applied += 1
                if post == s or post in met:
                    continue  # changed nothing (revoking a revoked access, ...), or met
                met.add(post)
                k = key(post, swap_accounts)
                if k in seen:
                    continue
                seen.add(k)
                parents.append((index, act))
                new_index = len(parents) - 1
                if on_state is not None:
                    on_state(path(new_index), post)
                if not check_state(post, new_index) and stop_at_first:
                    result.seconds = time.monotonic() - start
                    return result
                new_frontier.append((post, new_index))
        frontier = new_frontier
        result.states = len(seen)
        result.depth = d
        elapsed = time.monotonic() - start
        result.per_depth.append((d, len(seen), result.transitions, elapsed))
        if progress:
            progress(
                f"depth {d}: {len(seen)} distinct states, {result.transitions} transitions "
                f"({result.applied} applied), {elapsed:.1f}s"
            )
        if not frontier:
            break
    result.seconds = time.monotonic() - start
    return result


MODEL_SUMMARY = """The model (`src/acceptance/model/`): 3 people and 2 accounts, each with its owner
and one service and one domain; memberships (grants {invoices}, {tickets, emails},
{manageproducts}, All; scope all or one item; expiry), invitations and their links,
ownership transfers, API tokens (with the Users power), a secondary contact, closing, a
clock and the worker. Every sequence of actions (each tried by everyone, allowed or not)
up to the depth below was explored breadth-first, states deduplicated up to relabelling
people (and accounts, when actions are tried on both). The one-account exploration also
lets a person get a login through an account outside it, the one thing other accounts
can change for an account."""


def render_runs(runs: list[tuple[str, Result]]) -> str:
    """The explorations' counts, one table per exploration."""
    parts = ["## What is proven", "", MODEL_SUMMARY]
    for title, result in runs:
        rows = "\n".join(
            f"| {d} | {states:,} | {transitions:,} | {seconds:.1f} s |"
            for d, states, transitions, seconds in result.per_depth
        )
        parts += [
            "",
            f"**{title}**: depth {result.depth}, {result.states:,} distinct states, "
            f"{result.transitions:,} transitions tried ({result.applied:,} applied), "
            f"{result.seconds:.0f} s.",
            "",
            "| depth | distinct states (cumulative) | transitions tried | time |",
            "| --- | --- | --- | --- |",
            rows,
        ]
    return "\n".join(parts) + "\n"


def render_invariants() -> str:
    """The invariants checked, each by the first paragraph of its docstring."""

    def first_paragraph(doc: str | None) -> str:
        return " ".join((doc or "").split("\n\n")[0].split())

    invariants = "\n".join(f"- {first_paragraph(f.__doc__)}" for f in STATE_INVARIANTS.values())
    steps = first_paragraph(step_violations.__doc__)
    return f"After every step:\n\n{invariants}\n- {steps}\n"


def render_markdown(result: Result) -> str:
    """The "What is proven" section for this one exploration (`--markdown`)."""
    return render_runs([(f"depth {result.depth}", result)]) + "\n" + render_invariants()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--fault", choices=sorted(FAULTS), action="append", default=[])
    parser.add_argument("--events", action="store_true", help="count the kinds of step")
    parser.add_argument(
        "--one-account",
        action="store_true",
        help="try actions on account 0 only, with logins given elsewhere (see compose)",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the 'What is proven' section"
    )
    args = parser.parse_args(argv)
    result = explore(
        args.depth,
        frozenset(args.fault),
        progress=lambda m: print(m, flush=True),
        active=(0,) if args.one_account else ACCOUNTS,
        elsewhere=args.one_account,
    )
    print(
        f"explored to depth {result.depth}: {result.states} distinct states, "
        f"{result.transitions} transitions tried ({result.applied} applied), "
        f"{result.seconds:.1f}s"
    )
    if args.events:
        for event, count in sorted(result.events.items()):
            print(f"{count:>10}  {event}")
    for gap in result.gaps.values():
        print(f"known gap {gap.describe()}")
    if args.markdown and not result.failure:
        print(render_markdown(result))
    if result.failure:
        print(f"INVARIANT VIOLATED: {result.failure.describe()}")
        return 1
    print("every invariant held")
    return 0


if __name__ == "__main__":
    sys.exit(main())
