"""The outside-call rule: bounded retries, the truth about uncertain answers, and no call
inside a transaction."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import transaction

from clientarea.core.outside import (
    OutsideRefused,
    OutsideUnavailable,
    OutsideUncertain,
    in_transaction,
    outside_call,
)


class Script:
    """Answers each call with the next scripted outcome (an exception or a value)."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def test_nothing_sent_yet_is_retried_until_it_works() -> None:
    script = Script(OutsideUnavailable("down"), OutsideUnavailable("down"), "ok")
    assert outside_call(script) == "ok" and script.calls == 3


def test_retries_are_bounded_by_the_attempts() -> None:
    script = Script(*[OutsideUnavailable("down")] * 5)
    with pytest.raises(OutsideUnavailable):
        outside_call(script)
    assert script.calls == 3


def test_retries_are_bounded_by_the_time_budget(settings: Any) -> None:
    settings.OUTSIDE_CALL_BUDGET_SECONDS = 0.2
    settings.OUTSIDE_CALL_BACKOFF_SECONDS = 0.15

    calls = []

    def slow() -> None:
        calls.append(1)
        time.sleep(0.15)
        raise OutsideUnavailable("down")

    with pytest.raises(OutsideUnavailable):
        outside_call(slow, attempts=50)
    assert len(calls) <= 2  # the budget stops it, not the 50 attempts


def test_an_unanswered_call_is_not_retried_unless_the_operation_is_idempotent() -> None:
    script = Script(OutsideUncertain("no answer"), "ok")
    with pytest.raises(OutsideUncertain):
        outside_call(script)
    assert script.calls == 1
    script = Script(OutsideUncertain("no answer"), "ok")
    assert outside_call(script, retry_uncertain=True) == "ok"


def test_a_refusal_is_final() -> None:
    script = Script(OutsideRefused("no"), "ok")
    with pytest.raises(OutsideRefused):
        outside_call(script, retry_uncertain=True)
    assert script.calls == 1


def test_a_refusal_after_an_unanswered_attempt_stays_uncertain() -> None:
    # The first renewal may have been applied; the retry is refused because of it.
    script = Script(OutsideUncertain("no answer"), OutsideRefused("expiry does not match"))
    with pytest.raises(OutsideUncertain):
        outside_call(script, retry_uncertain=True)


@pytest.mark.django_db
def test_no_outside_call_inside_a_transaction() -> None:
    assert not in_transaction()  # the test case's own wrapping does not count
    script = Script("ok")
    with transaction.atomic(), pytest.raises(RuntimeError, match="inside a database transaction"):
        outside_call(script)
    assert script.calls == 0


def test_nested_calls_follow_the_innermost_policy_and_the_outer_budget(settings: Any) -> None:
    # A service (outer) wraps a driver method that has its own retry policy (inner): the
    # driver's attempts are not multiplied by the service's.
    inner = Script(*[OutsideUnavailable("down")] * 10)

    def driver_method() -> Any:
        return outside_call(inner)

    with pytest.raises(OutsideUnavailable):
        outside_call(driver_method, retry_uncertain=True)
    assert inner.calls == 3  # not 3 x 3

    # A driver without its own policy still gets the outer one.
    plain = Script(OutsideUnavailable("down"), "ok")
    assert outside_call(plain) == "ok" and plain.calls == 2


def test_a_nested_call_keeps_to_what_is_left_of_the_outer_budget(settings: Any) -> None:
    settings.OUTSIDE_CALL_BUDGET_SECONDS = 0.3
    settings.OUTSIDE_CALL_BACKOFF_SECONDS = 0.05

    calls = []

    def slow_driver() -> Any:
        time.sleep(0.25)  # the outer call has spent most of its budget

        def hang() -> None:
            calls.append(1)
            time.sleep(0.1)
            raise OutsideUnavailable("down")

        return outside_call(hang, attempts=50)

    with pytest.raises(OutsideUnavailable):
        outside_call(slow_driver)
    assert len(calls) == 1  # what was left of the outer budget allowed one attempt


def test_the_grace_period_must_outlast_a_requests_outside_call(settings: Any) -> None:
    from clientarea.core.checks import outside_call_settings_check

    assert outside_call_settings_check() == []
    settings.PENDING_CHANGE_GRACE_SECONDS = 30
    settings.OUTSIDE_CALL_BUDGET_SECONDS = 30.0
    assert [e.id for e in outside_call_settings_check()] == ["core.E001"]
