"""The model against the app's published data, and its own machinery (canonical form,
independence from Django)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from acceptance.model import catalogue, routes
from acceptance.model.explore import explore
from acceptance.model.invariants import mark_orphans
from acceptance.model.reach import reach
from acceptance.model.rules import RULES, SERVICE_OF, SYSTEM, Action, actions, apply
from acceptance.model.state import (
    PERMUTATIONS,
    State,
    canonical,
    canonical_full,
    initial,
    relabel,
)

SRC = Path(__file__).resolve().parents[3]


def test_catalogue_is_the_apps():
    from clientarea.accounts import permissions

    assert tuple(p.code.value for p in permissions.CATALOGUE) == catalogue.PERMS
    assert {
        p.code.value: tuple(sorted(i.value for i in p.implies))
        for p in permissions.CATALOGUE
        if p.implies
    } == catalogue.IMPLIES
    assert {
        kind: perm.value if perm else None
        for kind, perm in permissions.EMAIL_KIND_PERMISSION.items()
    } == catalogue.EMAIL_KIND_PERMISSION
    assert permissions.EmailKind.SECURITY.value == catalogue.SECURITY
    for codes in catalogue.GRANTS.values():
        assert catalogue.normalise(codes) == tuple(sorted(permissions.normalise(list(codes))))


def test_every_route_needing_an_account_is_in_a_group():
    from clientarea.access_table import ROUTES

    grouped = {name for names in routes.ROUTES_OF.values() for name in names}
    for route in ROUTES:
        if route.rule in ("public", "login"):
            assert route.name not in grouped
        else:
            assert route.name in grouped, route.name


def test_scoped_routes_are_the_acceptance_tests():
    from acceptance.objects import ALSO_NEEDS, SCOPED_ROUTES
    from clientarea.access_table import BY_NAME

    for name, kind in SCOPED_ROUTES.items():
        if name == "notifications:history_detail":
            continue  # by kind of email: reach.person_history
        assert routes.item_of(BY_NAME[name]) == kind, name
    assert routes.ALSO_NEEDS == ALSO_NEEDS


def test_the_model_imports_no_django():
    code = (
        "import sys, acceptance.model.explore, acceptance.model.invariants;"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'django'], 'django'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(SRC)})


def _states(depth: int):
    frontier, out = [initial()], [initial()]
    for _ in range(depth):
        frontier = [o.state for s in frontier for a in actions(s) if (o := apply(s, a)).ok]
        out += frontier
    return out


def test_canonical_form_is_the_same_for_every_relabelling():
    """Two labellings of one world have one canonical form (so deduplication is sound),
    and it is one of them; the explorer's fast form agrees with the slow one on which
    states are the same."""
    states = _states(2)[:300]
    for s in states:
        forms = {canonical(relabel(s, p, q)) for p, q in PERMUTATIONS}
        assert forms == {canonical(s)}
        assert canonical(s) in {relabel(s, p, q) for p, q in PERMUTATIONS}
    fast = {canonical(s) for s in states}
    slow = {canonical_full(s) for s in states}
    assert len(fast) == len(slow)


def test_relabelled_worlds_reach_the_same():
    """No rule names a person or an account: a relabelled world reaches the same, relabelled."""
    p, q = (1, 2, 0), (1, 0)
    for s in _states(2)[:300]:
        r, rr = reach(s), reach(relabel(s, p, q))
        for a in (0, 1):
            for u in (0, 1, 2):
                assert rr.pages[q[a]][p[u]] == r.pages[a][u]
                assert rr.tokens[q[a]][p[u]] == r.tokens[a][u]
                assert rr.history[q[a]][p[u]] == r.history[a][u]


def test_a_refused_action_changes_nothing():
    s = initial()
    out = apply(s, Action("invite", 1, 0, 2, "ALL"))  # P1 does not own A0
    assert not out.ok and out.state is s
    assert not apply(s, Action("worker", SYSTEM)).ok


def test_explorer_counts_small_depths():
    result = explore(2)
    assert result.failure is None
    assert result.per_depth[0][1] > 1 and result.states == result.per_depth[-1][1]


def test_each_distinct_state_is_handed_over_with_its_shortest_sequence():
    """The conformance step's entry point: replaying the sequence gives the state."""
    seen: list[tuple[list[Action], object]] = []
    explore(2, on_state=lambda steps, s: seen.append((steps, s)))
    assert seen[0] == ([], initial())
    assert len(seen) == explore(2).states
    for steps, s in seen:
        replayed = initial()
        for act in steps:
            out = apply(replayed, act)
            assert out.ok
            replayed = mark_orphans(out.state)
        assert canonical(replayed) == canonical(s)


def test_every_action_names_the_apps_entry_point():
    assert set(SERVICE_OF) == set(RULES)


def test_one_account_mode_acts_on_account_0_only():
    """The deeper, narrower exploration: account 1 keeps its labels and is only touched
    by what is global (logins, the clock, the worker)."""
    seen: list[State] = []
    result = explore(3, active=(0,), on_state=lambda steps, s: seen.append(s))
    assert result.failure is None and result.states == len(seen) > 1
    assert all(s.owners[1] == (1,) and not s.invites[1][2] for s in seen)
