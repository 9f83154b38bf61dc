"""The conformance replay's counts (``conformance.Stats``), apart from Django: a run split
into shards (``CONFORMANCE_SHARD``, one process each, ``make prove``) writes each shard's
counts as JSON, and this module merges them into the paragraph of docs/access.md's "What
is proven", after checking that together they replayed every state of every tree.

    python -m acceptance.model.conformance_stats OUT.md SHARD.json [SHARD.json ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .routes import PAGE_GROUPS, TOKEN_GROUPS
from .state import ACCOUNTS, USERS


@dataclass
class Stats:
    states: int = 0
    actions_replayed: int = 0
    refusals_checked: int = 0
    transitions_checked: int = 0  # accepted steps off the tree (see check_transitions)
    policy_checks: int = 0  # route groups, endpoint groups, emails compared
    tokens_checked: int = 0
    step_emails: int = 0
    http_samples: int = 0
    http_requests: int = 0
    http_seconds: float = 0.0
    random_walks: int = 0
    max_depth: int = 0
    # Each tree walked: (its depth, how many accounts acted, its states).
    trees: list[tuple[int, int, int]] = field(default_factory=list)
    # Each tree's explorer report: (the depth it fully explored, its distinct states), so
    # a run can be held to having replayed every state the model has at that depth.
    explored: list[tuple[int, int]] = field(default_factory=list)
    walk_length: int = 0
    seed: int | None = None  # of the random walks
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # of this process (the machine may be shared)
    shards: int = 1  # processes the run was split into (their counts added up)

    def summary(self) -> str:
        return (
            f"conformance: {self.states} states replayed on the app ({self.trees_text()}"
            f"{f', {self.random_walks} random walks' if self.random_walks else ''}), "
            f"{self.actions_replayed} actions replayed, {self.transitions_checked} more "
            f"accepted steps and {self.refusals_checked} refusals checked, "
            f"{self.policy_checks} policy answers compared ({self.tokens_checked} token "
            f"checks, {self.step_emails} queued emails), {self.http_samples} HTTP "
            f"samples ({self.http_requests} requests, {self.http_seconds:.1f}s), "
            f"{self.seconds:.1f}s ({self.cpu_seconds:.1f}s of CPU)"
        )

    def trees_text(self) -> str:
        return ", ".join(
            f"every state to depth {depth} with "
            f"{'both accounts' if accounts == len(ACCOUNTS) else 'account A0'} acting"
            f"{'' if accounts == len(ACCOUNTS) else ', logins given elsewhere'} "
            f"({states} states)"
            for depth, accounts, states in self.trees
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Stats:
        data = json.loads(text)
        data["trees"] = [tuple(t) for t in data["trees"]]
        data["explored"] = [tuple(e) for e in data["explored"]]
        return cls(**data)

    @classmethod
    def merged(cls, parts: list[Stats]) -> Stats:
        """The shards' counts added up: each state was checked by exactly one shard (the
        trees' states add up); the explorer's report is the same in every shard; the time
        is the longest shard's, the CPU all of theirs."""
        first = parts[0]
        assert all(p.explored == first.explored for p in parts), "shards of different runs"
        assert all([t[:2] for t in p.trees] == [t[:2] for t in first.trees] for p in parts)
        out = cls(
            trees=[
                (depth, accounts, sum(p.trees[i][2] for p in parts))
                for i, (depth, accounts, _) in enumerate(first.trees)
            ],
            explored=list(first.explored),
            walk_length=first.walk_length,
            seed=first.seed,
            max_depth=max(p.max_depth for p in parts),
            seconds=max(p.seconds for p in parts),
            shards=len(parts),
        )
        for name in (
            "states",
            "actions_replayed",
            "refusals_checked",
            "transitions_checked",
            "policy_checks",
            "tokens_checked",
            "step_emails",
            "http_samples",
            "http_requests",
            "http_seconds",
            "random_walks",
            "cpu_seconds",
        ):
            setattr(out, name, sum(getattr(p, name) for p in parts))
        return out

    def markdown(self) -> str:
        """The conformance paragraph of docs/access.md's "What is proven" (``make prove``
        hands it to ``acceptance.model.prove --extra-file``)."""
        walks = (
            f", then {self.random_walks} random sequences of {self.walk_length} actions "
            f"(seed {self.seed})"
            if self.random_walks
            else ""
        )
        # Split between processes, each samples the first of each kind on its own, and
        # replays the steps down to its share of the tree: those counts are per process.
        each = f", in each of the {self.shards} processes" if self.shards > 1 else ""
        return (
            "### Conformance with the app\n\n"
            f"The model's states ({self.trees_text()}{walks}) were replayed on the app "
            "through its service functions, each step in a rolled-back savepoint "
            f"({self.states} states checked, each state of the trees once; "
            f"{self.actions_replayed} actions replayed"
            f"{', each process replaying the steps down to its share' if self.shards > 1 else ''}"
            "). After each step the "
            "app's own answers were those of the model: every person's access to each "
            "account and every route group of the route table (`Access.allows` and the "
            "object's scope), every live token (`token_authenticate` and the token "
            "permission check, per endpoint group), who may be sent each kind of email and "
            "what the contact receives, Email History, and every email the step queued "
            f"({self.policy_checks} answers, {self.step_emails} queued emails). "
            f"{self.transitions_checked} more accepted steps (the first of each kind of "
            f"step by each kind of actor, leading to a state met before{each}) were "
            f"accepted and checked the same way. {self.refusals_checked} refused actions "
            f"(the first of each kind of refusal{each}) were refused by the app too, "
            "changing nothing. Over HTTP with CSRF checks on, the first state of each "
            f"distinct reach{each} ({self.http_samples} samples, {self.http_requests} "
            "requests: every page route as the person, every API route with the token) "
            "answered as the model predicts. Five faults planted in the app (revoke a "
            "no-op, the scope ignored on the domain's pages, a token outliving its "
            "creator's access, two owners after a transfer, Email History ignoring kinds) "
            f"are each found within 3 steps. Time: {self.seconds:.0f} s "
            f"({self.cpu_seconds:.0f} s of CPU"
            f"{f', {self.shards} processes side by side' if self.shards > 1 else ''}).\n"
        )


def uncovered_trees(stats: Stats) -> list[str]:
    """What keeps a run from counting as having replayed the model: a tree whose explorer
    stopped short of its depth, that did not check exactly the states the explorer has
    (each state once: fewer is a gap, more is a state checked twice), or fewer policy
    answers than every person and token on every account in every state."""
    out = []
    if not stats.trees or len(stats.trees) != len(stats.explored):
        out.append("no tree, or a tree without its explorer's report")
    for (depth, _, replayed), (explored_depth, distinct) in zip(
        stats.trees, stats.explored, strict=False
    ):
        if explored_depth != depth:
            out.append(f"depth {depth}: the explorer stopped at depth {explored_depth}")
        if replayed != distinct:
            out.append(f"depth {depth}: {replayed} states checked, the model has {distinct}")
    per_state = len(ACCOUNTS) * len(USERS) * (1 + len(PAGE_GROUPS) + len(TOKEN_GROUPS))
    if stats.policy_checks < stats.states * per_state:
        out.append(f"{stats.policy_checks} policy answers for {stats.states} states")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the markdown paragraph to write")
    parser.add_argument("shards", nargs="+", help="each shard's counts (JSON)")
    args = parser.parse_args(argv)
    stats = Stats.merged([Stats.from_json(Path(p).read_text()) for p in args.shards])
    missing = uncovered_trees(stats)
    if missing:
        print("the shards did not replay the whole model: " + "; ".join(missing))
        return 1
    print(stats.summary())
    Path(args.out).write_text(stats.markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
