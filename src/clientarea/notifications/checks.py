"""System checks for the outbox's settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

# The exchanges of one send that may each wait up to EMAIL_TIMEOUT: MAIL FROM, RCPT TO,
# DATA, the message and its final dot, and a reset after an error; one more for margin.
EXCHANGES_PER_SEND = 6


def check_outbox_claim(**kwargs: Any) -> list[checks.CheckMessage]:
    """A worker's claim on the email it is sending must outlast the send: were it to lapse
    mid-send, another worker could take the email over and send it too."""
    timeout = getattr(settings, "EMAIL_TIMEOUT", None)
    claim = settings.OUTBOX_CLAIM_SECONDS
    if timeout is None:
        return [
            checks.Warning(
                "EMAIL_TIMEOUT is not set: a mail server that stops answering holds a "
                "worker for ever, and its claim on the email it sends lapses meanwhile.",
                hint="Set EMAIL_TIMEOUT (seconds), e.g. 30.",
                id="notifications.W001",
            )
        ]
    if claim <= EXCHANGES_PER_SEND * timeout:
        return [
            checks.Warning(
                f"OUTBOX_CLAIM_SECONDS ({claim}) does not outlast one send "
                f"({EXCHANGES_PER_SEND} exchanges of up to EMAIL_TIMEOUT = {timeout} s): "
                "another worker could send an email again while it is being sent.",
                hint=f"Make OUTBOX_CLAIM_SECONDS greater than {EXCHANGES_PER_SEND * timeout}.",
                id="notifications.W002",
            )
        ]
    return []
