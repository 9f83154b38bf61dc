from __future__ import annotations

from collections.abc import Iterator

import pytest

from clientarea.billing.gateways import SANDBOX


@pytest.fixture(autouse=True)
def _fresh_sandbox() -> Iterator[None]:
    SANDBOX.reset()
    yield
    SANDBOX.reset()
