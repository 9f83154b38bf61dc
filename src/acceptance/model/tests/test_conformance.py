"""The model agrees with the real app: every distinct state the explorer reaches within
a depth is replayed on the app (services, and HTTP for a sample), and the app's answers
are the model's. CONFORMANCE_DEPTH and CONFORMANCE_ONE_ACCOUNT_DEPTH set the depths
(`make test`: see DEPTH);
CONFORMANCE_WALKS, CONFORMANCE_WALK_LENGTH and CONFORMANCE_SEED add random deeper
sequences (`make prove`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from acceptance.model.conformance import Ctx, checker, rolled_back
from acceptance.model.conformance_stats import Stats, uncovered_trees
from acceptance.model.routes import PAGE_GROUPS, TOKEN_GROUPS, rule_of
from acceptance.model.rules import Action
from acceptance.model.state import ACCOUNTS, USERS, initial
from acceptance.objects import OWNERS_OBJECT_ROUTES
from clientarea.access_table import ROUTES

pytestmark = pytest.mark.django_db

# Every state of both accounts to DEPTH, then of account A0 (A1 as it is, logins given
# elsewhere: the one-account exploration that speaks for any number of accounts, see
# compose) to ONE_ACCOUNT_DEPTH: about 4,900 states, about 25 ms of CPU each (most of it
# the services), some two minutes.
DEPTH = int(os.environ.get("CONFORMANCE_DEPTH", "3"))
ONE_ACCOUNT_DEPTH = int(os.environ.get("CONFORMANCE_ONE_ACCOUNT_DEPTH", "4"))
WALKS = int(os.environ.get("CONFORMANCE_WALKS", "0"))
WALK_LENGTH = int(os.environ.get("CONFORMANCE_WALK_LENGTH", "8"))
SEED = int(os.environ.get("CONFORMANCE_SEED", "0"))
HTTP = os.environ.get("CONFORMANCE_HTTP", "1") == "1"
# "i/n": this process checks its share of the states (make prove runs n side by side).
SHARD = tuple(int(n) for n in os.environ.get("CONFORMANCE_SHARD", "0/1").split("/"))
# Where to write this run's counts (JSON) for docs/access.md's "What is proven" (make
# prove merges the shards' with acceptance.model.conformance_stats).
SUMMARY = os.environ.get("CONFORMANCE_SUMMARY", "")


def _run(
    shard: tuple[int, int], depth: int, one_account_depth: int, walks: int, http: bool = HTTP
) -> Stats:
    with checker(http=http, shard=shard) as check:
        stats = check.run_tree(depth)
        if one_account_depth > depth:
            stats = check.run_tree(one_account_depth, active=(0,))
        if walks:
            stats = check.run_random(walks, WALK_LENGTH, SEED)
    return stats


def test_the_app_answers_what_the_model_predicts(settings: Any) -> None:
    settings.DEMO_MODE = True  # the demo-only pages exist (and are checked) too
    index, count = SHARD
    assert 0 <= index < count
    stats = _run((index, count), DEPTH, ONE_ACCOUNT_DEPTH, WALKS)
    print(f"\n{stats.summary()}")
    if count == 1:
        assert_it_covered_the_model(stats)
    if SUMMARY:
        Path(SUMMARY).write_text(stats.to_json())


def test_shards_check_every_state_once_between_them(settings: Any) -> None:
    """Split in two (the subtrees under the depth-1 states dealt out, so states above,
    at and below that depth are all tried), the shards check exactly the states one
    run checks, each once, and their merged counts cover the model; the walks are dealt
    out too."""
    settings.DEMO_MODE = True
    runs: list[tuple[Stats, list[Any]]] = []
    for shard in ((0, 2), (1, 2), (0, 1)):
        with rolled_back(), checker(http=False, shard=shard) as check:
            check.shard_depth, check.checked = 1, []
            check.run_tree(1, transitions=False)
            stats = check.run_tree(2, transitions=False, active=(0,))
            stats = check.run_random(3, 3, seed=1)
            runs.append((stats, check.checked))
    (first, first_seen), (second, second_seen), (whole, whole_seen) = runs
    assert first_seen and second_seen and not set(first_seen) & set(second_seen)
    assert sorted(first_seen + second_seen) == sorted(whole_seen)
    assert any(len(seq) == 2 for _, seq in second_seen)  # below the dealt depth
    merged = Stats.merged([first, second])
    assert merged.states == whole.states and merged.trees == whole.trees
    assert (first.random_walks, second.random_walks, whole.random_walks) == (2, 1, 3)
    assert uncovered_trees(merged) == []
    assert uncovered_trees(second), "a shard alone does not cover the model"


def test_a_run_that_reached_nothing_does_not_pass() -> None:
    """The coverage check above refuses a run that replayed nothing, fewer states than the
    explorer reports, or no policy answers (plain Python: no run of the app here)."""
    nothing = Stats()
    short = Stats(states=3, trees=[(2, 2, 3)], explored=[(2, 134)])
    stopped = Stats(states=134, trees=[(2, 2, 134)], explored=[(1, 134)])
    no_answers = Stats(states=134, trees=[(2, 2, 134)], explored=[(2, 134)])
    for stats in (nothing, short, stopped, no_answers):
        with pytest.raises(AssertionError):
            assert_it_covered_the_model(stats)
        assert uncovered_trees(stats), stats
    # Merged shards are held to exactly the model's states: a shard's counts merged twice
    # (some states checked twice) do not pass.
    per_state = len(ACCOUNTS) * len(USERS) * (1 + len(PAGE_GROUPS) + len(TOKEN_GROUPS))
    most = Stats(states=90, trees=[(2, 2, 90)], explored=[(2, 134)], policy_checks=90 * per_state)
    assert uncovered_trees(Stats.merged([most, most]))


def assert_it_covered_the_model(stats: Stats) -> None:
    """An explorer or a checker that reached nothing must not pass: every tree replayed
    at least the distinct states the explorer reports at its depth, each state's policy
    answers were compared for every person and account, and the HTTP sample requested
    every page route (and every API route) for each reach it sampled."""
    assert stats.trees and len(stats.explored) == len(stats.trees)
    for (depth, _, replayed), (explored_depth, distinct) in zip(
        stats.trees, stats.explored, strict=True
    ):
        assert explored_depth == depth, "the explorer stopped before the depth asked"
        assert distinct > depth  # more than a single line of states
        assert replayed >= distinct, f"depth {depth}: {replayed} of {distinct} states replayed"
    per_state = len(ACCOUNTS) * len(USERS) * (1 + len(PAGE_GROUPS) + len(TOKEN_GROUPS))
    assert per_state > 0
    assert stats.policy_checks >= stats.states * per_state
    if not HTTP:
        return
    page_routes = [
        r
        for r in ROUTES
        if rule_of(r) is not None and not r.is_api and r.name not in OWNERS_OBJECT_ROUTES
    ]
    api_routes = [r for r in ROUTES if r.is_api and rule_of(r) is not None]
    assert page_routes and api_routes
    # A sample is a person's pages (one request per page route) or a token's API (one per
    # API route); the first state's owner is always sampled.
    assert stats.http_samples >= 2
    assert stats.http_requests >= len(page_routes)
    assert stats.http_requests >= stats.http_samples * min(len(page_routes), len(api_routes))


def test_a_revoke_then_an_offer_are_replayed_in_that_order(settings: Any) -> None:
    """Found by the depth-6 replay: with every action at the same frozen instant, a
    revocation and the transfer offer made after it shared a time, and the app (which
    counts a revocation at the offer's very instant as after it) refused the offer the
    model accepts. Each replayed action now has its own instant, as in production."""
    settings.DEMO_MODE = True
    steps = [
        Action("invite", 0, 0, 1, "TE"),
        Action("accept", 1, 0, 1),
        Action("revoke", 0, 0, 1),
        Action("transfer_start", 0, 0, 1, "stays"),
        Action("transfer_accept", 1, 0),
    ]
    with checker(http=False) as check:
        s, ctx, seq = initial(), Ctx(), ()
        for act in steps:
            s, ctx, seq = check.step(s, ctx, seq, act)
            check.check_state(s, ctx, seq)
        assert s.owners[0] == (1,) and ctx.steps == len(steps)
