"""Prove the proof, on the model's side: plant each fault in the model's rules or reach
and expect the explorer to find it with a short sequence (printed). The conformance step
plants the same faults in the real app's policy."""

from __future__ import annotations

import pytest

from acceptance.model.explore import explore
from acceptance.model.reach import FAULTS

# The longest sequence each fault may need: short, so a fault is caught early.
SHORTEST = {
    "revoke_noop": 3,  # invite, accept, revoke
    "scope_ignored_on_one_route": 3,  # invite, accept, set the scope
    "token_outlives_creator": 4,  # invite, accept, make a token, revoke
    "transfer_two_owners": 2,  # start, accept
    "history_ignores_kinds": 2,  # invite, accept
    "resend_keeps_old_link": 3,  # invite, resend, use the old link
}


def test_every_fault_has_a_bound():
    assert set(SHORTEST) == set(FAULTS)


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_the_explorer_finds_the_planted_fault(fault: str) -> None:
    result = explore(SHORTEST[fault], frozenset({fault}))
    assert result.failure is not None, f"{fault} ({FAULTS[fault]}) was not found"
    print(f"\n{fault} ({FAULTS[fault]}) found: {result.failure.describe()}")
    assert len(result.failure.sequence) <= SHORTEST[fault]


# Without a fault the same depths hold: test_explore.py explores deeper with none.
