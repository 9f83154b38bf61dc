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

from acceptance.model.conformance import checker

pytestmark = pytest.mark.django_db

# Every state of both accounts to DEPTH, then of account A0 (A1 as it is) to
# ONE_ACCOUNT_DEPTH: about 600 states, about a minute of CPU (measured with others'
# tests on the same cores: ~70 ms of CPU a state, most of it the services and policy).
DEPTH = int(os.environ.get("CONFORMANCE_DEPTH", "2"))
ONE_ACCOUNT_DEPTH = int(os.environ.get("CONFORMANCE_ONE_ACCOUNT_DEPTH", "3"))
WALKS = int(os.environ.get("CONFORMANCE_WALKS", "0"))
WALK_LENGTH = int(os.environ.get("CONFORMANCE_WALK_LENGTH", "8"))
SEED = int(os.environ.get("CONFORMANCE_SEED", "0"))
HTTP = os.environ.get("CONFORMANCE_HTTP", "1") == "1"
# Where to write the paragraph for docs/access.md's "What is proven" (make prove).
SUMMARY = os.environ.get("CONFORMANCE_SUMMARY", "")


def test_the_app_answers_what_the_model_predicts(settings: Any) -> None:
    settings.DEMO_MODE = True  # the demo-only pages exist (and are checked) too
    with checker(http=HTTP) as check:
        stats = check.run_tree(DEPTH)
        if ONE_ACCOUNT_DEPTH > DEPTH:
            stats = check.run_tree(ONE_ACCOUNT_DEPTH, active=(0,))
        if WALKS:
            stats = check.run_random(WALKS, WALK_LENGTH, SEED)
    print(f"\n{stats.summary()}")
    if SUMMARY:
        Path(SUMMARY).write_text(stats.markdown(SEED if WALKS else None))
