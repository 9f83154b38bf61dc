"""The model agrees with the real app: every distinct state the explorer reaches within
a depth is replayed on the app (services, and HTTP for a sample), and the app's answers
are the model's. CONFORMANCE_DEPTH sets the depth (`make test`: see DEPTH);
CONFORMANCE_WALKS, CONFORMANCE_WALK_LENGTH and CONFORMANCE_SEED add random deeper
sequences (`make prove`)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from acceptance.model.conformance import checker

pytestmark = pytest.mark.django_db

DEPTH = int(os.environ.get("CONFORMANCE_DEPTH", "3"))
WALKS = int(os.environ.get("CONFORMANCE_WALKS", "0"))
WALK_LENGTH = int(os.environ.get("CONFORMANCE_WALK_LENGTH", "8"))
SEED = int(os.environ.get("CONFORMANCE_SEED", "0"))
HTTP = os.environ.get("CONFORMANCE_HTTP", "1") == "1"


def test_the_app_answers_what_the_model_predicts(settings: Any) -> None:
    settings.DEMO_MODE = True  # the demo-only pages exist (and are checked) too
    with checker(http=HTTP) as check:
        stats = check.run_tree(DEPTH)
        if WALKS:
            stats = check.run_random(WALKS, WALK_LENGTH, SEED)
    print(f"\n{stats.summary()}")
