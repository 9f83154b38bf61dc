"""Delivery over real SMTP (aiosmtpd on loopback): outages delay mail, never lose or
duplicate it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.core.management import call_command
from django.utils import timezone

from clientarea.notifications.mail_server import mail_server_outage
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import email_queue, outbox_deliver_due, retry_delay

pytestmark = pytest.mark.django_db


class Inbox:
    """aiosmtpd handler: keeps what it receives; can refuse with a temporary or permanent
    error for chosen recipients."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse: dict[str, str] = {}

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:  # fmt: skip
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted"

    def subjects(self) -> list[str]:
        return sorted(str(m["Subject"]) for m in self.messages)


class SMTPServer:
    """The mail server on a loopback port of its own. Until it starts, the port is held by
    a socket that is bound but not listening: connecting is refused (the server is down),
    and no other process (another test worker, say) can take the port meanwhile."""

    def __init__(self) -> None:
        self._held: socket.socket | None = socket.socket()
        self._held.bind(("127.0.0.1", 0))
        self.port = int(self._held.getsockname()[1])
        self.inbox = Inbox()
        self.controller: Controller | None = None

    def start(self) -> None:
        self._release()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        self._release()
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def _release(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None


@pytest.fixture
def smtp(settings: Any) -> Iterator[SMTPServer]:
    server = SMTPServer()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    settings.OUTBOX_MAX_ATTEMPTS = 8
    settings.OUTBOX_RETRY_BASE_SECONDS = 30
    yield server
    server.stop()


def queue(n: int, prefix: str = "Message") -> list[OutboxEmail]:
    return [
        email_queue(to_email=f"person{i}@example.com", subject=f"{prefix} {i}", body=f"Body {i}")
        for i in range(n)
    ]


def later(minutes: int) -> Any:
    return timezone.now() + timedelta(minutes=minutes)


def test_every_message_arrives_once(smtp: SMTPServer) -> None:
    smtp.start()
    queue(3)
    assert outbox_deliver_due() == {"sent": 3, "failed": 0, "withheld": 0}
    assert outbox_deliver_due(now=later(600)) == {"sent": 0, "failed": 0, "withheld": 0}
    assert smtp.inbox.subjects() == ["Message 0", "Message 1", "Message 2"]
    message = smtp.inbox.messages[0]
    assert message["Message-ID"].startswith("<outbox-")
    assert OutboxEmail.objects.filter(status=OutboxEmail.Status.SENT).count() == 3


def test_server_down_for_a_while_then_back_delivers_everything_exactly_once(
    smtp: SMTPServer,
) -> None:
    queue(4)
    # Down: nothing listens on the port. The emails are not at fault: they stay pending,
    # their attempts unused, with the server's error; the workers back off.
    assert outbox_deliver_due() == {"sent": 0, "failed": 0, "withheld": 0}
    rows = list(OutboxEmail.objects.all())
    assert all(r.status == OutboxEmail.Status.PENDING and r.attempts == 0 for r in rows)
    assert all("Connection refused" in r.last_error or "Errno" in r.last_error for r in rows)
    outage = mail_server_outage()
    assert outage is not None and outage.failures == 1
    # Nobody connects again before the back-off has passed; after it, one try more.
    assert outbox_deliver_due() == {"sent": 0, "failed": 0, "withheld": 0}
    assert outbox_deliver_due(now=later(1)) == {"sent": 0, "failed": 0, "withheld": 0}
    outage = mail_server_outage()
    assert outage is not None and outage.failures == 2
    assert set(OutboxEmail.objects.values_list("attempts", flat=True)) == {0}
    # More mail is written while the server is still down.
    queue(2, prefix="Later")
    # Back up: everything arrives, once.
    smtp.start()
    stats = outbox_deliver_due(now=later(60))
    assert stats == {"sent": 6, "failed": 0, "withheld": 0}
    assert mail_server_outage() is None
    for _ in range(3):
        assert outbox_deliver_due(now=later(24 * 60)) == {"sent": 0, "failed": 0, "withheld": 0}
    assert smtp.inbox.subjects() == [
        "Later 0", "Later 1", "Message 0", "Message 1", "Message 2", "Message 3",
    ]  # fmt: skip
    assert not OutboxEmail.objects.exclude(status=OutboxEmail.Status.SENT).exists()
    assert set(OutboxEmail.objects.values_list("last_error", flat=True)) == {""}


def test_a_temporary_refusal_mid_batch_retries_only_that_message(smtp: SMTPServer) -> None:
    smtp.start()
    queue(3)
    smtp.inbox.refuse["person1@example.com"] = "451 4.3.0 Try again later"
    assert outbox_deliver_due() == {"sent": 2, "failed": 1, "withheld": 0}
    failed = OutboxEmail.objects.get(to_email="person1@example.com")
    assert failed.status == OutboxEmail.Status.PENDING and "451" in failed.last_error
    del smtp.inbox.refuse["person1@example.com"]
    assert outbox_deliver_due(now=later(5)) == {"sent": 1, "failed": 0, "withheld": 0}
    assert outbox_deliver_due(now=later(600)) == {"sent": 0, "failed": 0, "withheld": 0}
    assert smtp.inbox.subjects() == ["Message 0", "Message 1", "Message 2"]


def test_a_permanent_refusal_gives_up_at_once_and_keeps_the_error(smtp: SMTPServer) -> None:
    smtp.start()
    queue(1)
    smtp.inbox.refuse["person0@example.com"] = "550 5.1.1 No such mailbox"
    assert outbox_deliver_due() == {"sent": 0, "failed": 1, "withheld": 0}
    row = OutboxEmail.objects.get()
    assert row.status == OutboxEmail.Status.FAILED and "550" in row.last_error
    assert outbox_deliver_due(now=later(24 * 60)) == {"sent": 0, "failed": 0, "withheld": 0}


def test_after_the_last_attempt_the_email_is_kept_as_failed(smtp: Any, settings: Any) -> None:
    settings.OUTBOX_MAX_ATTEMPTS = 3
    smtp.start()
    queue(1)
    smtp.inbox.refuse["person0@example.com"] = "451 4.3.0 Try again later"
    for minutes in (0, 10, 60):
        outbox_deliver_due(now=later(minutes))
    row = OutboxEmail.objects.get()
    assert row.status == OutboxEmail.Status.FAILED and row.attempts == 3 and row.last_error
    del smtp.inbox.refuse["person0@example.com"]
    assert outbox_deliver_due(now=later(24 * 60)) == {"sent": 0, "failed": 0, "withheld": 0}
    assert smtp.inbox.messages == []


def test_back_off_doubles_and_is_capped(settings: Any) -> None:
    settings.OUTBOX_RETRY_BASE_SECONDS = 30
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(40) == timedelta(hours=6)


def test_a_row_claimed_by_another_worker_or_already_sent_is_not_sent_again(
    smtp: SMTPServer,
) -> None:
    smtp.start()
    first, second = queue(2)
    # Another worker holds a live claim on `first`; `second` was sent meanwhile.
    OutboxEmail.objects.filter(pk=first.pk).update(
        status=OutboxEmail.Status.SENDING, locked_until=later(5), claim_token="other"
    )
    OutboxEmail.objects.filter(pk=second.pk).update(status=OutboxEmail.Status.SENT)
    assert outbox_deliver_due() == {"sent": 0, "failed": 0, "withheld": 0}
    # The other worker crashed: once its claim expires the row is delivered, once.
    assert outbox_deliver_due(now=later(10)) == {"sent": 1, "failed": 0, "withheld": 0}
    assert outbox_deliver_due(now=later(60)) == {"sent": 0, "failed": 0, "withheld": 0}
    assert smtp.inbox.subjects() == ["Message 0"]


def test_one_time_links_are_removed_from_the_stored_copy_after_delivery(smtp: SMTPServer) -> None:
    smtp.start()
    link = "https://clients.example.com/invitation/secret-token/"
    email_queue(to_email="a@example.com", subject="Join", body=f"Open {link} now",
                redact=[link])  # fmt: skip
    assert link in OutboxEmail.objects.get().body_text  # needed until it is delivered
    outbox_deliver_due()
    assert link in smtp.inbox.messages[0].get_payload()
    stored = OutboxEmail.objects.get()
    assert link not in stored.body_text and "link removed" in stored.body_text


def test_the_worker_command_delivers_once(smtp: SMTPServer) -> None:
    smtp.start()
    queue(2)
    call_command("run_worker", "--once")
    assert len(smtp.inbox.messages) == 2


def test_staff_can_send_a_given_up_email_again(smtp: SMTPServer) -> None:
    from clientarea.notifications.services import outbox_retry

    smtp.start()
    (row,) = queue(1)
    OutboxEmail.objects.filter(pk=row.pk).update(status=OutboxEmail.Status.FAILED, attempts=8)
    assert outbox_deliver_due() == {"sent": 0, "failed": 0, "withheld": 0}
    assert outbox_retry(email=row) is True
    assert outbox_deliver_due() == {"sent": 1, "failed": 0, "withheld": 0}
    assert outbox_retry(email=row) is False  # a sent email is never queued again
    assert len(smtp.inbox.messages) == 1
