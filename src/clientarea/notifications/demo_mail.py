"""The local mail viewer's store: demo mode only.

Under ``make run`` (DEMO_MODE) mail goes to ``DemoMailBackend``: instead of printing every
message into the request log, it keeps a copy for the back office's mail viewer and prints
one line saying where to read it. A copy holds the message as sent, one-time links
included, so that a newcomer can open an invitation in one click; it is kept for
DEMO_MAIL_KEEP_HOURS at most (then deleted), never written outside demo mode, and never
logged: the line printed names the subject and the viewer's page, not the text.

The copies are files (one JSON per message) in DEMO_MAIL_DIR, so the web server and the
worker, two processes, share them without a table that production would carry.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage
from django.urls import reverse
from django.utils import timezone

_OUTBOX_ID = re.compile(r"<outbox-(\d+)@")


def demo_mail_enabled() -> bool:
    return bool(settings.DEMO_MODE)


def _store() -> Path:
    return Path(settings.DEMO_MAIL_DIR)


def _keep() -> timedelta:
    return timedelta(hours=settings.DEMO_MAIL_KEEP_HOURS)


@dataclass(frozen=True)
class DemoMail:
    name: str
    outbox_id: int | None
    to: str
    subject: str
    body: str
    sent_at: datetime


def _name_for(message: EmailMessage) -> str:
    found = _OUTBOX_ID.search(str(message.extra_headers.get("Message-ID", "")))
    return f"outbox-{found.group(1)}" if found else f"mail-{secrets.token_hex(8)}"


def demo_mail_keep(message: EmailMessage) -> str | None:
    """Keep a copy of a sent message for the viewer (demo mode only). Returns its name."""
    if not demo_mail_enabled():
        return None
    store = _store()
    store.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = _name_for(message)
    record = {
        "to": ", ".join(message.to),
        "subject": message.subject,
        "body": message.body,
        "sent_at": timezone.now().isoformat(),
    }
    path = store / f"{name}.json"
    temporary = path.with_suffix(".tmp")
    # Created readable by this user alone from the start (the copy holds live links).
    descriptor = os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(record))
    temporary.replace(path)
    demo_mail_purge()
    return name


def demo_mail_purge(now: datetime | None = None) -> int:
    """Delete the copies older than DEMO_MAIL_KEEP_HOURS (all of them outside demo mode)."""
    store = _store()
    if not store.is_dir():
        return 0
    limit = (now or timezone.now()) - _keep()
    removed = 0
    for path in store.glob("*.json"):
        mail = _read(path)
        if mail is None or not demo_mail_enabled() or mail.sent_at < limit:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


def _read(path: Path) -> DemoMail | None:
    try:
        data = json.loads(path.read_text())
        found = re.fullmatch(r"outbox-(\d+)", path.stem)
        return DemoMail(
            name=path.stem,
            outbox_id=int(found.group(1)) if found else None,
            to=str(data["to"]),
            subject=str(data["subject"]),
            body=str(data["body"]),
            sent_at=datetime.fromisoformat(data["sent_at"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def demo_mail_for_outbox(outbox_id: int) -> DemoMail | None:
    """The kept copy of an outbox email, if it is still kept (and demo mode is on)."""
    if not demo_mail_enabled():
        return None
    demo_mail_purge()
    return _read(_store() / f"outbox-{int(outbox_id)}.json")


def demo_mail_list() -> list[DemoMail]:
    """Every kept copy, newest first (mail sent by other code than the outbox too)."""
    if not demo_mail_enabled() or not _store().is_dir():
        return []
    demo_mail_purge()
    found = [m for m in (_read(p) for p in _store().glob("*.json")) if m is not None]
    return sorted(found, key=lambda m: m.sent_at, reverse=True)


class DemoMailBackend(BaseEmailBackend):
    """Demo mode's email backend: a copy for the local mail viewer, one line in the
    terminal. Outside demo mode it refuses to run: production mail needs a real server."""

    def __init__(self, *args: Any, stream: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stream = stream or sys.stdout

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not demo_mail_enabled():
            raise RuntimeError("The demo mail backend works in DEMO_MODE only.")
        sent = 0
        for message in email_messages:
            name = demo_mail_keep(message) or ""
            found = re.fullmatch(r"outbox-(\d+)", name)
            where = settings.SITE_URL + (
                reverse("admin:notifications_demo_mail_detail", args=[int(found.group(1))])
                if found
                else reverse("admin:notifications_demo_mail")
            )
            self.stream.write(f"Email to {', '.join(message.to)}: {message.subject!r}. ")
            self.stream.write(f"Read it in the local mail viewer: {where}\n")
            self.stream.flush()
            sent += 1
        return sent


def check_demo_backend(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """The demo mail backend keeps copies of mail, links included: demo mode only. A
    configuration that would use it otherwise does not start."""
    from django.core.checks import Error

    if settings.EMAIL_BACKEND.endswith(".DemoMailBackend") and not settings.DEMO_MODE:
        return [
            Error(
                "EMAIL_BACKEND is the demo mail backend but DEMO_MODE is off.",
                hint="Set EMAIL_URL to your mail server (smtp://...), or DEMO_MODE=true "
                "for a demonstration.",
                id="notifications.E001",
            )
        ]
    return []
