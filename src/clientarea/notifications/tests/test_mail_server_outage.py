"""An outage of the mail server delays mail, never loses it: a failure that is the
server's uses up no email's attempts, and every worker backs off together (one row in
the database, ``mail_server``); a failure that is the email's counts as before.

No sleeping: each turn is given its `now`, the next try's moment as the shared row says.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from clientarea.notifications import services
from clientarea.notifications.mail_server import (
    mail_server_gate,
    mail_server_outage,
    server_retry_delay,
)
from clientarea.notifications.models import MailServerState, OutboxEmail
from clientarea.notifications.services import email_queue, outbox_deliver_due

from .test_smtp_delivery import Inbox, SMTPServer, later, queue, smtp  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db

NOTHING = {"sent": 0, "failed": 0, "withheld": 0}
LOGGER = "clientarea.notifications"


def next_try() -> datetime:
    outage = mail_server_outage()
    assert outage is not None and outage.retry_at is not None
    return outage.retry_at


def attempts() -> set[tuple[str, int]]:
    return set(OutboxEmail.objects.values_list("status", "attempts"))


def test_an_outage_of_any_length_uses_up_no_attempt_and_each_email_goes_once_after(
    smtp: SMTPServer,  # noqa: F811
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Down for hours (longer than OUTBOX_MAX_ATTEMPTS back-offs, the 63 minutes that used
    to turn every email into "failed"): every email stays pending, attempts 0. Logged at
    ERROR once for the whole outage, and its end once."""
    settings.OUTBOX_SERVER_RETRY_MAX_SECONDS = 300
    queue(5)
    start = timezone.now()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert outbox_deliver_due(now=start) == NOTHING
        for _ in range(40):  # 30 s, 1, 2, 4 min, then every 5 min: over 3 hours down
            assert outbox_deliver_due(now=next_try()) == NOTHING
            assert attempts() == {(OutboxEmail.Status.PENDING, 0)}
        outage = mail_server_outage()
        assert outage is not None and outage.failures == 41
        assert outage.unreachable_since is not None and outage.unreachable_since >= start
        assert next_try() - start > timedelta(hours=3)
        assert "Connection refused" in outage.last_error or "Errno" in outage.last_error
        smtp.start()
        assert outbox_deliver_due(now=next_try()) == {"sent": 5, "failed": 0, "withheld": 0}
    assert attempts() == {(OutboxEmail.Status.SENT, 1)}
    assert sorted(n for n in _message_id_counts(smtp).values()) == [1, 1, 1, 1, 1]
    assert mail_server_outage() is None
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "unreachable" in errors[0].getMessage()
    # Nothing per email: one record per try of the server, none naming an email.
    assert not [r for r in caplog.records if r.getMessage().startswith("Email ")]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"The mail server is reachable again (unreachable since "
        f"{outage.unreachable_since.isoformat()}, 41 failed tries)."
    ]


def _message_id_counts(server: SMTPServer) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in server.inbox.messages:
        counts[str(message["Message-ID"])] = counts.get(str(message["Message-ID"]), 0) + 1
    return counts


def test_the_back_off_doubles_up_to_its_cap(settings: Any) -> None:
    settings.OUTBOX_RETRY_BASE_SECONDS = 30
    settings.OUTBOX_SERVER_RETRY_MAX_SECONDS = 300
    assert [server_retry_delay(n).total_seconds() for n in (1, 2, 3, 4, 5, 40)] == [
        30, 60, 120, 240, 300, 300,
    ]  # fmt: skip


def test_the_back_off_is_shared_a_second_worker_does_not_connect_meanwhile(
    smtp: SMTPServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    queue(2)
    assert outbox_deliver_due() == NOTHING  # worker 1 finds the server down
    retry_at = next_try()
    smtp.start()  # back already, but nobody may know before the back-off ends

    def no_connection(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a worker connected during the back-off")

    monkeypatch.setattr(services, "get_connection", no_connection)
    # Workers 2 and 3, any time before the back-off ends: no claim, no connection.
    for now in (timezone.now(), retry_at - timedelta(seconds=1)):
        assert outbox_deliver_due(now=now) == NOTHING
    assert OutboxEmail.objects.filter(status=OutboxEmail.Status.PENDING).count() == 2
    # When it ends, one worker takes the probe; another asking at that moment waits.
    first, second = mail_server_gate(retry_at), mail_server_gate(retry_at)
    assert (first.open, first.probing) == (True, True)
    assert (second.open, second.probing) == (False, False)
    monkeypatch.undo()
    # The probing worker (had it died, the next one would try one back-off later).
    assert outbox_deliver_due(now=next_try()) == {"sent": 2, "failed": 0, "withheld": 0}
    assert len(smtp.inbox.messages) == 2


def test_a_probe_with_nothing_to_send_still_ends_the_outage(smtp: SMTPServer) -> None:  # noqa: F811
    queue(1)
    assert outbox_deliver_due() == NOTHING
    OutboxEmail.objects.all().delete()
    smtp.start()
    assert outbox_deliver_due(now=next_try()) == NOTHING
    assert mail_server_outage() is None


def test_a_permanent_refusal_of_one_email_fails_that_email_alone(smtp: SMTPServer) -> None:  # noqa: F811
    smtp.start()
    queue(3)
    smtp.inbox.refuse["person1@example.com"] = "550 5.1.1 No such mailbox"
    assert outbox_deliver_due() == {"sent": 2, "failed": 1, "withheld": 0}
    refused = OutboxEmail.objects.get(to_email="person1@example.com")
    assert refused.status == OutboxEmail.Status.FAILED and refused.attempts == 1
    assert "550" in refused.last_error
    assert mail_server_outage() is None


def test_a_5xx_to_the_message_itself_fails_it_and_not_the_server(smtp: SMTPServer) -> None:  # noqa: F811
    class RefusesData(Inbox):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if "person0@example.com" in envelope.rcpt_tos:
                return "554 5.6.0 Message content rejected"
            return await super().handle_DATA(server, session, envelope)

    smtp.inbox = RefusesData()
    smtp.start()
    queue(2)
    assert outbox_deliver_due() == {"sent": 1, "failed": 1, "withheld": 0}
    rejected = OutboxEmail.objects.get(to_email="person0@example.com")
    assert rejected.status == OutboxEmail.Status.FAILED and "554" in rejected.last_error
    assert mail_server_outage() is None


def test_a_4xx_to_one_recipient_retries_that_email_only(smtp: SMTPServer) -> None:  # noqa: F811
    smtp.start()
    queue(3)
    smtp.inbox.refuse["person2@example.com"] = "452 4.2.2 Mailbox full"
    assert outbox_deliver_due() == {"sent": 2, "failed": 1, "withheld": 0}
    assert dict(OutboxEmail.objects.values_list("to_email", "attempts")) == {
        "person0@example.com": 1, "person1@example.com": 1, "person2@example.com": 1,
    }  # fmt: skip
    waiting = OutboxEmail.objects.get(to_email="person2@example.com")
    assert waiting.status == OutboxEmail.Status.PENDING and "452" in waiting.last_error
    assert mail_server_outage() is None  # the server is fine: others keep going
    del smtp.inbox.refuse["person2@example.com"]
    assert outbox_deliver_due(now=later(5)) == {"sent": 1, "failed": 0, "withheld": 0}
    assert len(smtp.inbox.messages) == 3


def test_a_421_mid_batch_costs_that_email_one_attempt_the_rest_go_on(
    smtp: SMTPServer,  # noqa: F811
) -> None:
    """421 to one email's RCPT: smtplib drops the connection. The email answered uses one
    attempt (were it the server's, an email always answered so would hold the queue); the
    worker reconnects and sends the rest; nothing says the server is down."""
    smtp.start()
    queue(4)
    smtp.inbox.refuse["person1@example.com"] = "421 4.3.2 Service shutting down"
    assert outbox_deliver_due() == {"sent": 3, "failed": 1, "withheld": 0}
    assert dict(OutboxEmail.objects.values_list("to_email", "attempts")) == {
        "person0@example.com": 1, "person1@example.com": 1,
        "person2@example.com": 1, "person3@example.com": 1,
    }  # fmt: skip
    waiting = OutboxEmail.objects.get(to_email="person1@example.com")
    assert waiting.status == OutboxEmail.Status.PENDING and "421" in waiting.last_error
    assert mail_server_outage() is None
    del smtp.inbox.refuse["person1@example.com"]
    assert outbox_deliver_due(now=waiting.next_attempt_at) == {
        "sent": 1, "failed": 0, "withheld": 0,
    }  # fmt: skip
    assert sorted(_message_id_counts(smtp).values()) == [1, 1, 1, 1]


def test_a_server_going_down_mid_batch_costs_only_the_email_in_flight(
    smtp: SMTPServer,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The server shuts down while sending (421 to one email, then no connection): that
    email uses one attempt; the reconnect failing is the server's, so the rest wait with
    their attempts unchanged and every worker backs off."""
    smtp.start()
    queue(4)
    smtp.inbox.refuse["person1@example.com"] = "421 4.3.2 Service shutting down"
    opened = services._open
    opens: list[int] = []

    def down_after_first(connection: Any) -> None:
        opens.append(1)
        if len(opens) > 1:
            raise ConnectionRefusedError(111, "Connection refused")
        opened(connection)

    monkeypatch.setattr(services, "_open", down_after_first)
    assert outbox_deliver_due() == {"sent": 1, "failed": 1, "withheld": 0}
    assert dict(OutboxEmail.objects.values_list("to_email", "attempts")) == {
        "person0@example.com": 1, "person1@example.com": 1,
        "person2@example.com": 0, "person3@example.com": 0,
    }  # fmt: skip
    outage = mail_server_outage()
    assert outage is not None and "Connection refused" in outage.last_error
    monkeypatch.undo()
    del smtp.inbox.refuse["person1@example.com"]
    # Its own back-off (30 s) ends no later than the server's: all three go.
    assert outbox_deliver_due(now=next_try()) == {"sent": 3, "failed": 0, "withheld": 0}
    assert mail_server_outage() is None
    assert sorted(_message_id_counts(smtp).values()) == [1, 1, 1, 1]


class HangsUpOnBigMail(Inbox):
    """Hangs up instead of answering MAIL FROM for a message over 2,000 bytes (smtplib
    announces its SIZE): the server fails on that one email, every time."""

    hang_ups = 10**6

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: Any) -> str:  # fmt: skip
        size = next((int(o[5:]) for o in mail_options if o.upper().startswith("SIZE=")), 0)
        if size > 2000 and self.hang_ups:
            self.hang_ups -= 1
            server.transport.close()
        envelope.mail_from = address
        return "250 OK"


def test_a_connection_lost_before_any_reply_about_the_email_costs_it_one_attempt(
    smtp: SMTPServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The server hangs up when asked to take one email (MAIL FROM unanswered): nothing
    can have been stored (no warning about a possible duplicate), but the attempt counts,
    and the worker reconnects for the rest."""
    inbox = HangsUpOnBigMail()
    inbox.hang_ups = 1
    smtp.inbox = inbox
    smtp.start()
    big = email_queue(to_email="big@example.com", subject="Big", body="x" * 3000)
    queue(2)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert outbox_deliver_due() == {"sent": 2, "failed": 1, "withheld": 0}
    assert not [r for r in caplog.records if "may have accepted" in r.getMessage()]
    big.refresh_from_db()
    assert (big.status, big.attempts) == (OutboxEmail.Status.PENDING, 1)
    assert mail_server_outage() is None
    assert outbox_deliver_due(now=big.next_attempt_at) == {"sent": 1, "failed": 0, "withheld": 0}
    assert sorted(_message_id_counts(smtp).values()) == [1, 1, 1]


def test_an_email_the_server_always_hangs_up_on_never_holds_the_queue(
    smtp: SMTPServer,  # noqa: F811
) -> None:
    smtp.inbox = HangsUpOnBigMail()
    smtp.start()
    big = email_queue(to_email="big@example.com", subject="Big", body="x" * 3000)
    queue(2)
    turns = 0
    now = timezone.now()
    while big.status == OutboxEmail.Status.PENDING:
        email_queue(to_email=f"new{turns}@example.com", subject="New", body="Sent meanwhile")
        stats = outbox_deliver_due(now=now)
        big.refresh_from_db()
        turns += 1
        assert stats["failed"] == 1 and stats["sent"] >= 1 and big.attempts == turns
        assert mail_server_outage() is None
        now = big.next_attempt_at
    assert (big.status, turns) == (OutboxEmail.Status.FAILED, 8)  # OUTBOX_MAX_ATTEMPTS
    assert not OutboxEmail.objects.exclude(pk=big.pk).exclude(status="sent").exists()


def test_staff_see_the_outage_on_the_outbox_list(
    smtp: SMTPServer,  # noqa: F811
    admin_client: Any,
) -> None:
    queue(3)
    url = reverse("admin:notifications_outboxemail_changelist")
    assert "mail-server-outage" not in admin_client.get(url).content.decode()
    assert outbox_deliver_due() == NOTHING
    page = admin_client.get(url).content.decode()
    assert "The mail server has been unreachable since" in page
    assert "3 emails waiting" in page
    smtp.start()
    outbox_deliver_due(now=next_try())
    assert "mail-server-outage" not in admin_client.get(url).content.decode()
    assert MailServerState.objects.get().unreachable_since is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_three_workers_at_once_record_one_failure_and_one_of_them_probes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On PostgreSQL, each worker a thread with its own connection: three finding the
    server down at the same moment back off once (one failure, one ERROR); three asking
    when the back-off ends let one of them probe."""
    from django.db import connection

    from clientarea.notifications.mail_server import mail_server_failed

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: SQLite runs one writer at a time anyway")
    now = timezone.now()
    start = threading.Barrier(3)
    gates: list[Any] = []

    def in_thread(target: Any) -> threading.Thread:
        def run() -> None:
            try:
                start.wait(30)
                target()
            finally:
                connection.close()  # this thread's own connection

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def fail() -> None:
        mail_server_failed(ConnectionRefusedError("refused"), now=now, probing=False)

    with caplog.at_level(logging.ERROR, logger=LOGGER):
        for thread in [in_thread(fail) for _ in range(3)]:
            thread.join(30)
    outage = mail_server_outage()
    assert outage is not None and outage.failures == 1
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1
    retry_at = next_try()
    start.reset()
    for thread in [in_thread(lambda: gates.append(mail_server_gate(retry_at))) for _ in range(3)]:
        thread.join(30)
    assert sorted((g.open, g.probing) for g in gates) == [(False, False)] * 2 + [(True, True)]


def test_a_421_to_one_recipient_never_holds_the_queue(smtp: SMTPServer) -> None:  # noqa: F811
    """A relay answering 421 to RCPT for one address (a per-address rate limit or policy)
    is not the server going away: that email uses an attempt each time and waits its own
    back-off, every other email goes, and after OUTBOX_MAX_ATTEMPTS it is given up. Before,
    the 421 counted as an outage: the email went back unchanged, headed every batch, and
    nothing queued behind it was ever sent."""
    smtp.start()
    smtp.inbox.refuse["person0@example.com"] = "421 4.7.0 Too many messages, try later"
    queue(3)  # person0 first: it heads every batch it is due in
    assert outbox_deliver_due() == {"sent": 2, "failed": 1, "withheld": 0}
    assert mail_server_outage() is None
    stuck = OutboxEmail.objects.get(to_email="person0@example.com")
    assert (stuck.status, stuck.attempts) == (OutboxEmail.Status.PENDING, 1)
    assert "421" in stuck.last_error
    turns = 1
    while stuck.status == OutboxEmail.Status.PENDING:
        # Worker turns when the email is due again; new mail queued meanwhile goes out.
        email_queue(to_email=f"new{turns}@example.com", subject="New", body="Sent meanwhile")
        stats = outbox_deliver_due(now=stuck.next_attempt_at)
        stuck.refresh_from_db()
        turns += 1
        assert stats == {"sent": 1, "failed": 1, "withheld": 0}
        assert stuck.attempts == turns and mail_server_outage() is None
    assert (stuck.status, turns) == (OutboxEmail.Status.FAILED, 8)  # OUTBOX_MAX_ATTEMPTS
    assert OutboxEmail.objects.filter(status=OutboxEmail.Status.SENT).count() == 2 + 7
    assert len(smtp.inbox.messages) == 9


def test_a_throttled_sender_costs_one_attempt_per_back_off_not_one_per_email(
    smtp: SMTPServer,  # noqa: F811
) -> None:
    """421 to every MAIL FROM (the sender throttled; the server accepts connections): the
    first email pays its attempt, the second failing the same way makes it the server's,
    so the rest wait unchanged and the workers back off, doubling, until it takes mail."""

    class Throttles(Inbox):
        throttled = True

        async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                              mail_options: Any) -> str:  # fmt: skip
            if self.throttled:
                return "421 4.7.0 Sender throttled, try later"
            envelope.mail_from = address
            return "250 OK"

    inbox = Throttles()
    smtp.inbox = inbox
    smtp.start()
    queue(6)
    assert outbox_deliver_due() == {"sent": 0, "failed": 1, "withheld": 0}
    outage = mail_server_outage()
    assert outage is not None and outage.failures == 1 and "421" in outage.last_error
    for failures in (2, 3):  # each probe: one more email pays, the back-off doubles
        assert outbox_deliver_due(now=next_try()) == {"sent": 0, "failed": 1, "withheld": 0}
        outage = mail_server_outage()
        assert outage is not None and outage.failures == failures
    assert sorted(OutboxEmail.objects.values_list("attempts", flat=True)) == [0, 0, 0, 1, 1, 1]
    inbox.throttled = False
    assert outbox_deliver_due(now=next_try())["sent"] == 6
    assert mail_server_outage() is None
