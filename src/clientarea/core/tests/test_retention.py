"""Data retention run by the worker's housekeeping (settings RETENTION_*): what is old
goes, what is young stays, in a number of queries that does not grow with the rows; audit
events are never deleted."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.audit.services import audit_record
from clientarea.core.retention import delete_in_batches
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import email_queue, outbox_bodies_prune, outbox_deliver_due
from clientarea.security.models import ThrottleBucket, TrackedSession
from clientarea.security.sessions import session_retention, sessions_prune
from clientarea.security.throttle import _digest, throttle_fail, throttle_prune

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _queries(job: Callable[[], int]) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        result = job()
    return result, len(queries)


# --- tracked sessions ----------------------------------------------------------------------


def _sessions(user: Any, count: int, **fields: Any) -> None:
    now = timezone.now()
    TrackedSession.objects.bulk_create(
        TrackedSession(user=user, digest=f"{fields.get('end_reason', 'a')}{now.timestamp()}{i}"
                       f"{fields.get('last_seen_at', now).timestamp()}", **fields)
        for i in range(count)
    )  # fmt: skip


@pytest.mark.parametrize("count", [1, 30])
def test_sessions_ended_or_unused_long_ago_go_recent_and_active_ones_stay(
    settings: Any, count: int
) -> None:
    settings.RETENTION_SESSION_DAYS = 30
    user = UserFactory()
    now = timezone.now()
    long_ago = now - 31 * DAY
    _sessions(user, count, ended_at=long_ago, end_reason="logout", last_seen_at=long_ago)
    _sessions(user, count, last_seen_at=long_ago)  # never ended, unused for a month
    _sessions(user, 2, ended_at=now - 29 * DAY, end_reason="idle", last_seen_at=now - 29 * DAY)
    _sessions(user, 2, last_seen_at=now)  # in use
    audit_record(action="session.ended", actor=user, target=user, changes={"session": 1})

    deleted, queries = _queries(sessions_prune)

    assert deleted == 2 * count
    assert queries == 1  # one DELETE, however many rows
    assert TrackedSession.objects.count() == 4
    assert TrackedSession.objects.active().count() == 2
    assert AuditEvent.objects.filter(action="session.ended").exists()


def test_a_session_row_outlives_any_session_cookie_that_could_still_be_shown(
    settings: Any,
) -> None:
    """Deleting the row of a session whose cookie still works would let that session be
    tracked afresh (revived): the retention is never shorter than the cookie's age."""
    settings.RETENTION_SESSION_DAYS = 0
    settings.SESSION_COOKIE_AGE = 10 * 24 * 60 * 60
    assert session_retention() > timedelta(days=10)
    user = UserFactory()
    _sessions(user, 1, ended_at=timezone.now() - 9 * DAY, end_reason="user",
              last_seen_at=timezone.now() - 9 * DAY)  # fmt: skip
    assert sessions_prune() == 0
    assert sessions_prune(now=timezone.now() + 3 * DAY) == 1


# --- throttle counters -------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 30])
def test_throttle_counters_past_their_window_go_blocked_and_current_ones_stay(
    settings: Any, count: int
) -> None:
    settings.RETENTION_THROTTLE_HOURS = 2
    for i in range(count):
        throttle_fail(scope="login-pair", key=f"old{i}@example.com")
    throttle_fail(scope="login-pair", key="young@example.com")
    for _ in range(5):
        throttle_fail(scope="login-pair", key="blocked@example.com")  # blocked for 15 min
    now = timezone.now()
    # The longest window is an hour: 4 hours ago is past it and the 2 hours kept after it.
    ThrottleBucket.objects.update(window_started_at=now - timedelta(hours=4))
    ThrottleBucket.objects.filter(key_digest=_digest("login-pair", "young@example.com")).update(
        window_started_at=now - timedelta(hours=2, minutes=30)
    )

    deleted, queries = _queries(throttle_prune)

    assert deleted == count
    assert queries == 1
    kept = set(ThrottleBucket.objects.values_list("key_digest", flat=True))
    assert kept == {_digest("login-pair", k) for k in ("young@example.com", "blocked@example.com")}


# --- the text of delivered emails ---------------------------------------------------------


@pytest.mark.parametrize("count", [1, 30])
def test_the_text_of_emails_delivered_long_ago_is_cleared_the_row_stays(
    settings: Any, account: Account, count: int
) -> None:
    settings.RETENTION_EMAIL_BODY_DAYS = 30
    for i in range(count):
        email_queue(to_email=f"old{i}@example.com", subject=f"Old {i}", body="Old text.",
                    account=account)  # fmt: skip
    email_queue(to_email="young@example.com", subject="Young", body="Young text.",
                account=account)  # fmt: skip
    given_up = email_queue(to_email="failed@example.com", subject="Failed", body="Retry me.",
                           account=account)  # fmt: skip
    waiting = email_queue(to_email="later@example.com", subject="Later", body="Not yet.",
                          account=account)  # fmt: skip
    OutboxEmail.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now() + DAY)
    outbox_deliver_due()
    now = timezone.now()
    OutboxEmail.objects.filter(subject__startswith="Old").update(sent_at=now - 31 * DAY)
    OutboxEmail.objects.filter(pk=given_up.pk).update(
        status=OutboxEmail.Status.FAILED, created_at=now - 60 * DAY, sent_at=None
    )
    OutboxEmail.objects.filter(pk=waiting.pk).update(created_at=now - 60 * DAY)

    cleared, queries = _queries(outbox_bodies_prune)

    assert cleared == count
    assert queries == 1  # one UPDATE, however many rows
    old = OutboxEmail.objects.filter(subject__startswith="Old")
    assert old.count() == count  # the rows stay: Email History still lists them
    assert set(old.values_list("body_text", "body_after_send", "status")) == {("", "", "sent")}
    assert set(old.values_list("to_email", flat=True)) == {
        f"old{i}@example.com" for i in range(count)
    }
    assert OutboxEmail.objects.get(subject="Young").body_text == "Young text."
    assert OutboxEmail.objects.get(pk=given_up.pk).body_text == "Retry me."
    assert OutboxEmail.objects.get(pk=waiting.pk).body_text == "Not yet."
    assert outbox_bodies_prune() == 0  # nothing cleared twice


def test_email_history_says_an_old_emails_text_is_no_longer_kept(
    settings: Any,
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    settings.RETENTION_EMAIL_BODY_DAYS = 30
    email_queue(to_email="bea@example.com", subject="Invoice #12 is due",
                body="Please pay invoice 12.", kind="invoice", account=account)  # fmt: skip
    outbox_deliver_due()
    row = OutboxEmail.objects.get(subject="Invoice #12 is due")
    client = login_client(member_factory("emails", "invoices").user, account)
    detail_url = reverse("notifications:history_detail", args=[row.pk])
    assert "Please pay invoice 12." in client.get(detail_url).content.decode()

    OutboxEmail.objects.filter(pk=row.pk).update(sent_at=timezone.now() - 31 * DAY)
    assert outbox_bodies_prune() == 1

    listing = client.get(reverse("notifications:history")).content.decode()
    assert "Invoice #12 is due" in listing and "bea@example.com" in listing
    detail = client.get(detail_url)
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "Invoice #12 is due" in page and "Please pay invoice 12." not in page
    assert "no longer kept" in page and "30 days" in page


# --- the helper, and the worker -------------------------------------------------------------


def test_batches_bound_each_statement_and_a_run() -> None:
    user = UserFactory()
    _sessions(user, 7, ended_at=timezone.now() - 400 * DAY, end_reason="logout",
              last_seen_at=timezone.now() - 400 * DAY)  # fmt: skip
    old = TrackedSession.objects.filter(ended_at__isnull=False)
    deleted, queries = _queries(lambda: delete_in_batches(old, batch_size=3, max_batches=2))
    assert (deleted, queries) == (6, 2)  # two full batches, then the run stops
    assert delete_in_batches(old, batch_size=3) == 1
    assert not old.exists()


def test_the_worker_runs_the_retention_jobs(settings: Any, account: Account) -> None:
    settings.RETENTION_EMAIL_BODY_DAYS = 30
    user = UserFactory()
    _sessions(user, 2, ended_at=timezone.now() - 400 * DAY, end_reason="logout",
              last_seen_at=timezone.now() - 400 * DAY)  # fmt: skip
    email_queue(to_email="bea@example.com", subject="Old", body="Old text.", account=account)
    outbox_deliver_due()
    OutboxEmail.objects.update(sent_at=timezone.now() - 31 * DAY)
    audit_record(action="session.ended", actor=user, target=user, changes={"session": 1})
    audits = AuditEvent.objects.count()

    call_command("run_worker", "--once", stdout=(out := _Out()))

    assert "retention: removed" in out.text and "2 tracked sessions" in out.text
    assert "1 email texts" in out.text
    assert not TrackedSession.objects.exists()
    assert OutboxEmail.objects.get(subject="Old").body_text == ""
    assert AuditEvent.objects.count() >= audits  # audit events are never deleted


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


# --- the database cache's expired entries ------------------------------------------------


def test_expired_database_cache_entries_go_fresh_ones_stay() -> None:
    from django.core.cache import caches
    from django.test import override_settings

    from clientarea.core.apps import _create_cache_table
    from clientarea.core.retention import database_cache_prune

    database_cache = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "clientarea_cache_retention",
        },
    }
    with override_settings(CACHES=database_cache):
        _create_cache_table(using="default")
        shared = caches["shared"]
        for i in range(5):
            shared.set(f"api-rate:old:{i}", i, timeout=60)
        shared.set("summary", "fresh", timeout=3600)
        later = timezone.now() + timedelta(minutes=5)

        removed, queries = _queries(lambda: database_cache_prune(now=later))

        assert (removed, queries) == (5, 1)
        assert shared.get("summary") == "fresh"
        assert database_cache_prune(now=later) == 0
