"""The outbox when a worker dies (SIGKILL, a crash, a lost machine): nothing is lost, and
a message is sent twice only when the worker died between the server accepting it and
the worker recording that, and then with the same Message-ID.

A worker's death is simulated by an exception no handler catches (a BaseException),
raised at the chosen step: the code after it never runs, as after SIGKILL, and the row
is left as the dead worker left it. bench/bench_outbox_failure.py does it with real
processes and a real SIGKILL.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from django.core import checks
from django.utils import timezone

from clientarea.notifications import services
from clientarea.notifications.checks import check_outbox_claim
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import outbox_deliver_due

from .test_smtp_delivery import Inbox, SMTPServer, later, queue, smtp  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


class Killed(BaseException):
    """The worker process ends here: nothing after this point runs."""


def after_lease(settings: Any, extra: int = 1) -> Any:
    return timezone.now() + timedelta(seconds=settings.OUTBOX_CLAIM_SECONDS + extra)


def message_ids(server: SMTPServer) -> Counter[str]:
    return Counter(str(m["Message-ID"]) for m in server.inbox.messages)


def test_a_worker_that_dies_after_claiming_leaves_its_batch_to_the_next_after_the_lease(
    smtp: SMTPServer,  # noqa: F811
    settings: Any,
) -> None:
    smtp.start()
    queue(3)
    _token, claimed = services._claim(50, timezone.now())  # ... and the worker dies
    assert len(claimed) == 3
    # Its claim holds: no other worker sends these meanwhile.
    assert outbox_deliver_due() == {"sent": 0, "failed": 0, "withheld": 0}
    assert smtp.inbox.messages == []
    # Once it lapses, the next worker sends each of them, once; none of them was begun,
    # so none is in doubt.
    assert outbox_deliver_due(now=after_lease(settings)) == {"sent": 3, "failed": 0, "withheld": 0}
    assert sorted(message_ids(smtp).values()) == [1, 1, 1]
    assert set(OutboxEmail.objects.values_list("status", "attempts", "last_error")) == {
        (OutboxEmail.Status.SENT, 1, "")
    }
    assert outbox_deliver_due(now=after_lease(settings, 3600)) == {
        "sent": 0, "failed": 0, "withheld": 0,
    }  # fmt: skip


def test_a_worker_that_dies_after_the_server_accepted_sends_it_again_with_the_same_message_id(
    smtp: SMTPServer,  # noqa: F811
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The one duplicate SMTP cannot rule out. The server has accepted the first message
    (it answered 250 to the final dot) and the worker dies before recording that: nothing
    in the database tells this apart from a death a moment before the server accepted it,
    and no SMTP command asks a server whether it has a message. Sending it again may
    duplicate it; not sending it may lose it. The outbox sends it again, with the same
    Message-ID, so the recipient's mail system can fold the copies."""
    smtp.start()
    first, second = queue(2)

    def die(row: OutboxEmail) -> None:
        raise Killed

    monkeypatch.setattr(services, "_record_sent", die)
    with pytest.raises(Killed):
        outbox_deliver_due()
    monkeypatch.undo()
    assert len(smtp.inbox.messages) == 1
    left = {r.pk: r for r in OutboxEmail.objects.all()}
    # The dead worker's claim: `first` had begun (in doubt), `second` had not.
    assert left[first.pk].status == OutboxEmail.Status.SENDING
    assert left[first.pk].send_started_at is not None
    assert left[second.pk].status == OutboxEmail.Status.SENDING
    assert left[second.pk].send_started_at is None

    assert outbox_deliver_due() == {"sent": 0, "failed": 0, "withheld": 0}  # claim holds
    with caplog.at_level(logging.WARNING, logger="clientarea.notifications.services"):
        assert outbox_deliver_due(now=after_lease(settings)) == {
            "sent": 2, "failed": 0, "withheld": 0,
        }  # fmt: skip
    warnings = [r.getMessage() for r in caplog.records if r.name == services.logger.name]
    assert warnings == [f"Email {first.pk}: {services.IN_DOUBT}"]
    ids = message_ids(smtp)
    assert len(smtp.inbox.messages) == 3 and len(ids) == 2
    duplicated = [mid for mid, n in ids.items() if n == 2]
    assert len(duplicated) == 1 and duplicated[0].startswith(f"<outbox-{first.pk}@")
    # The dead worker's attempt counts; both rows end sent with no error left.
    assert dict(OutboxEmail.objects.values_list("pk", "attempts")) == {first.pk: 2, second.pk: 1}
    assert not OutboxEmail.objects.exclude(status=OutboxEmail.Status.SENT).exists()
    assert not OutboxEmail.objects.filter(send_started_at__isnull=False).exists()


def test_a_worker_that_dies_before_a_send_begins_duplicates_nothing(
    smtp: SMTPServer,  # noqa: F811
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dying anywhere before a row's send begins (claiming, between two rows, sending an
    earlier row) leaves that row not begun: it goes once, after the lease."""
    smtp.start()
    queue(3)
    real_still_ours = services._still_ours
    begun: list[int] = []

    def still_ours(row: OutboxEmail, token: str) -> bool:
        if len(begun) == 2:
            raise Killed  # the third row's send never began
        begun.append(row.pk)
        return real_still_ours(row, token)

    monkeypatch.setattr(services, "_still_ours", still_ours)
    with pytest.raises(Killed):
        outbox_deliver_due()
    monkeypatch.undo()
    assert len(smtp.inbox.messages) == 2  # both recorded as sent before the death
    assert outbox_deliver_due(now=after_lease(settings)) == {"sent": 1, "failed": 0, "withheld": 0}
    assert sorted(message_ids(smtp).values()) == [1, 1, 1]


def test_a_connection_cut_after_the_server_stored_a_message_is_logged_and_resent_same_id(
    smtp: SMTPServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same window from the server's side: it stores the message and the connection
    is lost before its 250 reaches the worker (RFC 1047). The worker cannot tell, records
    a failure and says the server may have it; the retry carries the same Message-ID."""

    class CutsAfterStoring(Inbox):
        cuts = 1

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            reply = await super().handle_DATA(server, session, envelope)
            if self.cuts:
                self.cuts -= 1
                server.transport.close()
            return reply

    smtp.inbox = CutsAfterStoring()
    smtp.start()
    first, second = queue(2)
    with caplog.at_level(logging.WARNING, logger="clientarea.notifications.services"):
        assert outbox_deliver_due() == {"sent": 1, "failed": 1, "withheld": 0}
    warnings = [r.getMessage() for r in caplog.records if r.name == services.logger.name]
    assert f"Email {first.pk}: {services.CUT_OFF}" in warnings
    # That attempt counts (the server had answered about it); the worker reconnects and
    # the next email goes in the same turn.
    assert dict(OutboxEmail.objects.values_list("pk", "attempts")) == {first.pk: 1, second.pk: 1}
    assert outbox_deliver_due(now=later(5)) == {"sent": 1, "failed": 0, "withheld": 0}
    ids = message_ids(smtp)
    assert len(smtp.inbox.messages) == 3 and sorted(ids.values()) == [1, 2]
    assert ids.most_common(1)[0][0].startswith(f"<outbox-{first.pk}@")


def test_a_message_that_kills_every_worker_sending_it_is_given_up_after_the_last_attempt(
    smtp: SMTPServer,  # noqa: F811
    settings: Any,
) -> None:
    smtp.start()
    settings.OUTBOX_MAX_ATTEMPTS = 3
    poison, _fine = queue(2)
    # Two workers have died sending it (the last one just now): this was the third attempt.
    OutboxEmail.objects.filter(pk=poison.pk).update(
        status=OutboxEmail.Status.SENDING,
        attempts=2,
        claim_token="dead",
        send_started_at=timezone.now(),
        locked_until=timezone.now() - timedelta(seconds=1),
    )
    assert outbox_deliver_due() == {"sent": 1, "failed": 0, "withheld": 0}
    poison.refresh_from_db()
    assert poison.status == OutboxEmail.Status.FAILED and poison.attempts == 3
    assert poison.last_error == services.IN_DOUBT
    assert [str(m["Subject"]) for m in smtp.inbox.messages] == ["Message 1"]
    # Staff may send it again (Email History's retry), as any email given up on.
    assert services.outbox_retry(email=poison) is True


def test_the_claim_on_the_row_being_sent_is_renewed_just_before_sending(
    smtp: SMTPServer,  # noqa: F811
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long batch never lets the claim on the email being sent lapse: each is renewed
    for a whole lease right before its send, and the send is recorded as begun."""
    smtp.start()
    queue(1)
    seen: list[OutboxEmail] = []
    real_message_for = services._message_for

    def message_for(row: OutboxEmail, connection: Any) -> Any:
        seen.append(OutboxEmail.objects.get(pk=row.pk))
        return real_message_for(row, connection)

    monkeypatch.setattr(services, "_message_for", message_for)
    before = timezone.now()
    outbox_deliver_due()
    (during,) = seen
    assert during.status == OutboxEmail.Status.SENDING
    assert during.send_started_at is not None and during.send_started_at >= before
    assert during.locked_until is not None
    assert during.locked_until >= during.send_started_at + timedelta(
        seconds=settings.OUTBOX_CLAIM_SECONDS
    )


def test_a_claim_shorter_than_one_send_is_reported(settings: Any) -> None:
    settings.EMAIL_TIMEOUT = 30
    settings.OUTBOX_CLAIM_SECONDS = 300
    assert check_outbox_claim() == []
    settings.OUTBOX_CLAIM_SECONDS = 60
    (warning,) = check_outbox_claim()
    assert warning.id == "notifications.W002" and warning.level == checks.WARNING
    settings.EMAIL_TIMEOUT = None
    assert [w.id for w in check_outbox_claim()] == ["notifications.W001"]


def test_the_worker_goes_on_after_a_database_error_and_recycles_its_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A database restart mid-turn is logged and the worker goes on with the next turn
    (it used to exit); between turns it drops a broken or too old connection."""
    from django.db import OperationalError

    from clientarea.notifications.management.commands import run_worker

    turns: list[str] = []
    recycled: list[int] = []

    def deliver() -> dict[str, int]:
        turns.append("turn")
        if len(turns) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return {"sent": 1, "failed": 0, "withheld": 0}

    monkeypatch.setattr(run_worker, "outbox_deliver_due", deliver)
    monkeypatch.setattr(run_worker, "close_old_connections", lambda: recycled.append(1))
    monkeypatch.setattr(run_worker.Command, "_housekeeping", lambda self: None)
    command = run_worker.Command()
    command._loop(once=False, interval=0, stopping=lambda: len(turns) >= 3)
    assert turns == ["turn", "turn", "turn"]
    assert len(recycled) == 3  # after the failed turn, and after each of the others
    with pytest.raises(OperationalError):  # --once still reports it
        turns.clear()
        command._loop(once=True, interval=0, stopping=lambda: False)


def test_each_email_costs_three_queries_besides_the_batch_claim(account: Any) -> None:
    """Begin (renew the claim), re-check the recipient (the account with its owner), and
    record it sent; the claim is four for the whole batch, plus one read of whether the
    mail server is in an outage (mail_server). An owner's email re-reads the owner with
    the account."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from clientarea.accounts.permissions import EmailKind
    from clientarea.notifications.services import notify

    for _ in range(10):
        notify(account=account, kind=EmailKind.GENERAL, template="notifications/email/notice",
               context={"subject": "Notice", "body": "Text"})  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        assert outbox_deliver_due() == {"sent": 10, "failed": 0, "withheld": 0}
    assert len(queries.captured_queries) == 1 + 4 + 3 * 10
