"""The API's Idempotency-Key records (PaymentRequest) are forgotten after
RETENTION_PAYMENT_REQUEST_DAYS (30 by default) by the worker's hourly retention turn
(registered as a retention job; the plan of its DELETE is in core's test_retention_scans)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.conf import settings as conf
from django.utils import timezone

from clientarea.billing.models import PaymentRequest
from clientarea.billing.services import payment_requests_prune
from clientarea.core.registry import RETENTION_JOBS
from clientarea.notifications.management.commands import run_worker

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _request(key: str, age: timedelta) -> None:
    PaymentRequest.objects.create(key=key, digest="d", created_at=timezone.now() - age)


def test_payment_requests_older_than_their_age_go_younger_ones_stay(settings: Any) -> None:
    settings.RETENTION_PAYMENT_REQUEST_DAYS = 30
    _request("old", 31 * DAY)
    _request("young", 29 * DAY)
    assert payment_requests_prune() == 1
    assert list(PaymentRequest.objects.values_list("key", flat=True)) == ["young"]
    settings.RETENTION_PAYMENT_REQUEST_DAYS = 7
    assert payment_requests_prune() == 1
    assert not PaymentRequest.objects.exists()


def test_the_default_age_keeps_a_retry_within_a_month_replayable() -> None:
    assert conf.RETENTION_PAYMENT_REQUEST_DAYS == 30
    _request("a-week-old", 7 * DAY)
    assert payment_requests_prune() == 0


def test_the_worker_retention_turn_runs_the_apps_jobs(settings: Any) -> None:
    settings.RETENTION_PAYMENT_REQUEST_DAYS = 30
    assert "payment idempotency keys" in RETENTION_JOBS
    _request("old", 40 * DAY)
    out = StringIO()
    run_worker.Command(stdout=out)._retention()
    assert not PaymentRequest.objects.exists()
    assert "1 payment idempotency keys" in out.getvalue()
