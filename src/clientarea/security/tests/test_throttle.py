"""The limiter behind every throttle: a limit, then a cool-off that always ends."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from clientarea.security.models import ThrottleBucket
from clientarea.security.throttle import (
    throttle_blocked,
    throttle_clear,
    throttle_consume,
    throttle_fail,
)

pytestmark = pytest.mark.django_db


def _cool_off_passes() -> None:
    past = timezone.now() - timedelta(seconds=1)
    ThrottleBucket.objects.filter(blocked_until__isnull=False).update(blocked_until=past)


def test_the_limit_blocks_then_the_cool_off_ends_the_block(settings: Any) -> None:
    """ASVS 6.3.1 / 6.1.1: brute force hits the limit; no permanent lockout."""
    settings.SECURITY_THROTTLES = {"login-email": (3, 600)}
    assert [throttle_fail(scope="login-email", key="a@example.com") for _ in range(3)] == [
        False,
        False,
        True,
    ]
    assert throttle_blocked(scope="login-email", key="a@example.com")
    assert not throttle_blocked(scope="login-email", key="b@example.com")
    _cool_off_passes()
    assert not throttle_blocked(scope="login-email", key="a@example.com")
    assert throttle_fail(scope="login-email", key="a@example.com") is False  # counts afresh


def test_attempts_while_blocked_do_not_extend_the_cool_off() -> None:
    """ASVS 6.1.1: a block anyone can trigger must end on its own."""
    for _ in range(5):
        throttle_fail(scope="otp-user", key=7)
    until = ThrottleBucket.objects.get().blocked_until
    for _ in range(20):
        throttle_fail(scope="otp-user", key=7)
    assert ThrottleBucket.objects.get().blocked_until == until


def test_keys_are_stored_hashed_and_clear_forgets_them() -> None:
    """ASVS 14.2.x: the throttle table holds no email addresses or IPs."""
    throttle_fail(scope="login-email", key="secret@example.com")
    assert "secret" not in ThrottleBucket.objects.get().key_digest
    throttle_clear(scope="login-email", key="secret@example.com")
    assert not ThrottleBucket.objects.exists()


def test_consume_allows_exactly_the_limit() -> None:
    """Counting actions (reset emails, invitations): the limit-th is the last allowed."""
    results = [throttle_consume(scope="reset-email", key="x@example.com") for _ in range(5)]
    assert results == [True, True, True, False, False]


@pytest.mark.django_db
def test_prune_drops_stale_counters_but_keeps_blocks_and_recent_ones() -> None:
    """Housekeeping: old counters are deleted; an active cool-off is never cut short."""
    from clientarea.security.throttle import _digest, throttle_prune

    throttle_fail(scope="login-pair", key="old@example.com")
    throttle_fail(scope="login-pair", key="recent@example.com")
    for _ in range(5):
        throttle_fail(scope="login-pair", key="blocked@example.com")
    long_ago = timezone.now() - timedelta(days=2)
    for key in ("old@example.com", "blocked@example.com"):
        ThrottleBucket.objects.filter(key_digest=_digest("login-pair", key)).update(
            window_started_at=long_ago
        )

    assert throttle_prune() == 1
    assert not ThrottleBucket.objects.filter(
        key_digest=_digest("login-pair", "old@example.com")
    ).exists()
    assert ThrottleBucket.objects.count() == 2
    assert throttle_blocked(scope="login-pair", key="blocked@example.com")
