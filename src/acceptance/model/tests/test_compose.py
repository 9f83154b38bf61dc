"""The one-account exploration speaks for any number of accounts (``compose``): each
account stands alone (its fate depends on the logins and its own records), and every
view of an account the both-accounts exploration reaches, the one-account exploration
reaches at no greater depth. Planted cross-account faults are found."""

from __future__ import annotations

import pytest

from acceptance.model import compose
from acceptance.model.reach import LOCALITY_FAULTS
from acceptance.model.rules import Action, apply
from acceptance.model.state import initial, set_at

# Every state of both accounts to this depth has facts 1-3 checked (make prove: 5).
LOCALITY_DEPTH = 3
# Both explorations to this depth, views compared (make prove: 6).
COVERAGE_DEPTH = 4


def test_each_account_stands_alone_in_every_state_to_depth_3() -> None:
    result, _, broken = compose.views(
        LOCALITY_DEPTH, one_account=False, check_locality_to=LOCALITY_DEPTH
    )
    assert result.depth == LOCALITY_DEPTH and result.states > 1000
    assert broken == []


def test_each_account_stands_alone_on_random_walks_of_20_steps() -> None:
    found = list(compose.walk_locality(30, 20, seed=3))
    assert found == [], found[:1]


def test_one_account_reaches_every_view_both_accounts_reach() -> None:
    both_result, both, _ = compose.views(COVERAGE_DEPTH, one_account=False)
    one_result, one, _ = compose.views(COVERAGE_DEPTH, one_account=True)
    assert both_result.depth == one_result.depth == COVERAGE_DEPTH
    assert len(both) > 3000 and one_result.events["login_elsewhere"] > 0
    assert compose.uncovered(both, one) == 0


def test_without_logins_from_elsewhere_views_are_missed() -> None:
    """The coverage check can fail: without ``login_elsewhere`` the one-account
    exploration never meets P2 with a login but no invitation to its account."""
    _, both, _ = compose.views(3, one_account=False)
    _, one, _ = compose.views(3, one_account=True, elsewhere=False)
    assert compose.uncovered(both, one) > 0


def test_nothing_about_an_account_reads_another_in_the_one_account_states_to_depth_4() -> None:
    """With the other account's records unreadable (make prove: to depth 7)."""
    result, _, broken = compose.views(4, one_account=True, blind_to=4)
    assert result.depth == 4 and result.states > 3000
    assert broken == []


@pytest.mark.parametrize("fault", sorted(LOCALITY_FAULTS))
def test_the_unreadable_account_check_finds_a_planted_cross_account_fault(fault: str) -> None:
    faults = frozenset({fault})
    _, _, broken = compose.views(3, one_account=True, faults=faults, blind_to=3)
    assert any("reads another account" in v for v in broken), broken
    print(f"\n{fault}: {broken}")


def test_the_unreadable_account_check_finds_a_login_taken_away(monkeypatch) -> None:
    """Fact 1's last clause: an action may give a login, never take one."""
    from acceptance.model import rules

    real = rules.RULES["revoke"]

    def revoke_and_log_out(s, act, faults):
        after = real(s, act, faults)
        return after._replace(logins=set_at(after.logins, act.target, False))

    monkeypatch.setitem(rules.RULES, "revoke", revoke_and_log_out)
    _, _, broken = compose.views(2, one_account=True, blind_to=2)
    assert any("changed the logins" in v for v in broken), broken


@pytest.mark.parametrize("fault", sorted(LOCALITY_FAULTS))
def test_the_locality_check_finds_a_planted_cross_account_fault(fault: str) -> None:
    faults = frozenset({fault})
    _, _, broken = compose.views(3, one_account=False, faults=faults, check_locality_to=3)
    assert broken, f"{fault} ({LOCALITY_FAULTS[fault]}) was not found"
    print(f"\n{fault}: {broken}")


def test_a_view_forgets_the_labels_of_people_and_other_accounts() -> None:
    start = initial()
    # P2 invited to A0, or to A1: A0's view differs, A1's is A0's of the first.
    to_a0 = apply(start, Action("invite", 0, 0, 2, "TE")).state
    to_a1 = apply(start, Action("invite", 1, 1, 2, "TE")).state
    assert compose.view_key(to_a0, 1) == compose.view_key(start, 0)
    assert compose.view_key(to_a0, 0) == compose.view_key(to_a1, 1)
    assert compose.view_key(to_a0, 0) != compose.view_key(start, 0)
    # A login given elsewhere is part of every account's view.
    login = apply(start, Action("login_elsewhere", 2)).state
    assert compose.view_key(login, 0) != compose.view_key(start, 0)
    assert not apply(login, Action("login_elsewhere", 2)).ok
