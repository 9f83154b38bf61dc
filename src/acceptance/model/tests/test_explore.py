"""Every action sequence of the model up to a depth keeps every invariant, and the
explorer reached every kind of state that matters (a used invitation, an accepted
transfer, a token dying with its creator, ...). ACCESS_MODEL_DEPTH sets the depth
(`make test`: 5; `make prove`: 8)."""

from __future__ import annotations

import os

from acceptance.model.explore import explore
from acceptance.model.invariants import STATE_INVARIANTS
from acceptance.model.reach import reach
from acceptance.model.rules import SYSTEM, Action, apply
from acceptance.model.state import State, initial

DEPTH = int(os.environ.get("ACCESS_MODEL_DEPTH", "5"))

# Kinds of step the exploration must have taken (explore.events_of), each within 5 steps.
MUST_REACH = {
    "accept",  # an invitation used by a person who has a login
    "accept_new",  # ... and by a person new to the site
    "resend",
    "cancel",
    "link refused: invitation accepted",
    "link refused: invitation cancelled",
    "link refused: invitation expired",
    "link refused: resent over",
    "link refused: someone else",
    "transfer accepted (stays)",
    "transfer accepted (leaves)",
    "transfer_cancel",
    "token voided by revoke",  # a token dying with its creator's access
    "token voided by transfer_accept",  # ... with its creator's ownership
    "token voided by close_confirm",  # ... with the account
    "token narrowed by its creator's grant",
    "token_revoke",
    "api_invite",  # the Users power of an owner's token
    "api_revoke",
    "refused: token_create",  # more than the creator holds
    "set_scope",
    "set_expiry",
    "access expired (worker)",
    "contact_confirm",
    "close_confirm",
    "refused: invite",  # people who may not, trying
    "refused: revoke",
    "refused: transfer_start",
}


def test_every_invariant_holds_for_every_sequence():
    result = explore(DEPTH)
    print(
        f"\naccess model, depth {result.depth}: {result.states} distinct states, "
        f"{result.transitions} transitions ({result.applied} applied), {result.seconds:.1f}s"
    )
    for depth, states, transitions, seconds in result.per_depth:
        print(f"  depth {depth}: {states} states, {transitions} transitions, {seconds:.1f}s")
    assert result.failure is None, result.failure.describe()
    assert result.depth == DEPTH
    missing = {e for e in MUST_REACH if not result.events[e]} if DEPTH >= 5 else set()
    assert not missing, f"the explorer never reached: {sorted(missing)}"


def _run(steps: list[Action]) -> State:
    s = initial()
    for act in steps:
        out = apply(s, act)
        assert out.ok, f"{act.describe()}: {out.reason}"
        s = out.state
    return s


def test_an_expired_creator_s_token_stays_dead_when_the_access_is_extended():
    """Once a known gap, found by this explorer: the app voided a token only when the
    worker recorded its creator's expiry, so extending the access before the worker ran
    revived it. membership_update now ends a lapsed access first (access_ended), so the
    token stays dead whether or not the worker ran; the person's pages come back."""
    setup = [
        Action("invite", 0, 0, 1, "TE"),
        Action("accept", 1, 0, 1),
        Action("set_expiry", 0, 0, 1, "soon"),
        Action("token_create", 1, 0, -1, "mine/all"),
        Action("tick", SYSTEM),
    ]
    expired = _run(setup)
    assert not reach(expired).tokens[0][1]
    for extended in (
        _run([*setup, Action("set_expiry", 0, 0, 1, "none")]),
        _run([*setup, Action("worker", SYSTEM), Action("set_expiry", 0, 0, 1, "none")]),
    ):
        assert reach(extended).pages[0][1] and not reach(extended).tokens[0][1]
        assert STATE_INVARIANTS["token_dies_with_creator"](extended, reach(extended)) == []


def test_the_invariants_catch_a_bad_state_directly():
    """Each state invariant is live: a hand-made bad state fails it."""
    s = initial()
    two_owners = s._replace(owners=((0, 1), (1,)))
    assert STATE_INVARIANTS["one_owner"](two_owners, reach(two_owners))
