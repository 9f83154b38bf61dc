"""System checks of the outside-call settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


def outside_call_settings_check(app_configs: Any = None, **kwargs: Any) -> list[checks.Error]:
    """The worker settles a pending change only after its grace period: that must be
    longer than the longest a request can still be talking to the outside system (its
    budget, plus one request's timeout that may have started just before the end), or the
    worker could ask while the request's own answer is still on its way."""
    grace = settings.PENDING_CHANGE_GRACE_SECONDS
    longest = settings.OUTSIDE_CALL_BUDGET_SECONDS + settings.OUTSIDE_CALL_TIMEOUT_SECONDS
    if not grace > longest:
        return [
            checks.Error(
                f"PENDING_CHANGE_GRACE_SECONDS ({grace}) must "
                f"be longer than OUTSIDE_CALL_BUDGET_SECONDS + OUTSIDE_CALL_TIMEOUT_SECONDS "
                f"({longest:g}).",
                hint="The worker would settle changes whose request is still waiting for "
                "the panel, registry or card processor.",
                id="core.E001",
            )
        ]
    return []
