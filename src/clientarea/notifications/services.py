"""Queueing and delivering email through the outbox.

``notify`` is the notification layer every domain app uses: it resolves who gets an
email of a given kind on an account (the owner, the secondary contacts that opted in to
that kind, plus any named people such as the payer or a ticket's opener) and writes one
outbox row per recipient inside the caller's transaction. The worker delivers later, so a
mail-server outage delays mail but never loses it, and a rolled-back action sends nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from clientarea.accounts.models import Account, Contact

from .models import OutboxEmail

logger = logging.getLogger(__name__)

CLAIM_SECONDS = 300


def render_email(template: str, context: dict[str, Any]) -> tuple[str, str]:
    """Render `notifications/email/<template>.txt`: first line is the subject."""
    ctx = {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL, **context}
    rendered = render_to_string(f"{template}.txt", ctx).strip()
    subject, _, body = rendered.partition("\n")
    return subject.strip(), body.strip() + "\n"


def email_queue(
    *,
    to_email: str,
    subject: str,
    body: str,
    kind: str = OutboxEmail.Kind.GENERAL,
    account: Account | None = None,
    to_name: str = "",
) -> OutboxEmail:
    return OutboxEmail.objects.create(
        to_email=to_email,
        to_name=to_name,
        subject=subject[:300],
        body_text=body,
        kind=kind,
        account=account,
    )


def recipients_for(
    *,
    account: Account,
    kind: str,
    include_owner: bool = True,
    extra: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """(name, email) pairs for an email of `kind` on `account`, each address once."""
    people: list[tuple[str, str]] = []
    if include_owner:
        people.append((account.owner.get_full_name(), account.owner.email))
    people.extend(extra)
    for contact in Contact.objects.filter(account=account).order_by("pk"):
        if contact.receives(kind):
            people.append((contact.name, contact.email))
    seen: set[str] = set()
    unique: list[tuple[str, str]] = []
    for name, email in people:
        if email.lower() not in seen:
            seen.add(email.lower())
            unique.append((name, email))
    return unique


def notify(
    *,
    account: Account,
    kind: str,
    template: str,
    context: dict[str, Any],
    include_owner: bool = True,
    extra: Iterable[tuple[str, str]] = (),
) -> list[OutboxEmail]:
    """Queue an email of `kind` for everyone who should get it on `account`."""
    rows = []
    for name, email in recipients_for(
        account=account, kind=kind, include_owner=include_owner, extra=extra
    ):
        subject, body = render_email(
            template, {**context, "account": account, "recipient_name": name}
        )
        rows.append(
            email_queue(
                to_email=email, to_name=name, subject=subject, body=body, kind=kind, account=account
            )
        )
    return rows


def email_send_to_person(
    *,
    to_email: str,
    to_name: str = "",
    template: str,
    context: dict[str, Any],
    kind: str = OutboxEmail.Kind.ACCOUNT,
    account: Account | None = None,
) -> OutboxEmail:
    """Queue a personal email (invitation, reset link): never copied to contacts."""
    subject, body = render_email(template, {**context, "recipient_name": to_name})
    return email_queue(
        to_email=to_email, to_name=to_name, subject=subject, body=body, kind=kind, account=account
    )


def _retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0))


def _claim(batch_size: int) -> list[OutboxEmail]:
    """Claim due rows for this worker. SKIP LOCKED lets several workers share the outbox;
    the claim (status SENDING + locked_until) is committed before any network I/O so a
    slow mail server never holds a database lock, and a crashed worker's claim expires."""
    now = timezone.now()
    with transaction.atomic():
        due = (
            OutboxEmail.objects.select_for_update(skip_locked=True)
            .filter(
                status__in=[OutboxEmail.Status.PENDING, OutboxEmail.Status.SENDING],
                next_attempt_at__lte=now,
            )
            .exclude(locked_until__gt=now)
            .order_by("next_attempt_at", "pk")[:batch_size]
        )
        rows = list(due)
        ids = [r.pk for r in rows]
        OutboxEmail.objects.filter(pk__in=ids).update(
            status=OutboxEmail.Status.SENDING, locked_until=now + timedelta(seconds=CLAIM_SECONDS)
        )
    return rows


def outbox_deliver_due(*, batch_size: int = 50) -> dict[str, int]:
    """Send what is due. Returns counts of sent and failed attempts."""
    rows = _claim(batch_size)
    stats = {"sent": 0, "failed": 0}
    if not rows:
        return stats
    connection = get_connection(fail_silently=False)
    try:
        try:
            connection.open()
        except Exception as exc:  # the server is down: every claimed row waits its turn
            for row in rows:
                _record_failure(row, exc)
                stats["failed"] += 1
            return stats
        for row in rows:
            to = f"{row.to_name} <{row.to_email}>" if row.to_name else row.to_email
            message = EmailMessage(
                subject=row.subject,
                body=row.body_text,
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[to],
                connection=connection,
                headers={"Message-ID": f"<outbox-{row.pk}@{settings.SITE_NAME.lower()}>"},
            )
            try:
                message.send()
            except Exception as exc:
                _record_failure(row, exc)
                stats["failed"] += 1
            else:
                OutboxEmail.objects.filter(pk=row.pk).update(
                    status=OutboxEmail.Status.SENT,
                    sent_at=timezone.now(),
                    attempts=row.attempts + 1,
                    locked_until=None,
                    last_error="",
                )
                stats["sent"] += 1
    finally:
        # Closing a connection to a server that just went away is not worth an error.
        with contextlib.suppress(Exception):
            connection.close()
    return stats


def _record_failure(row: OutboxEmail, exc: Exception) -> None:
    attempts = row.attempts + 1
    gave_up = attempts >= settings.OUTBOX_MAX_ATTEMPTS
    logger.warning("Email %s attempt %s failed: %s", row.pk, attempts, type(exc).__name__)
    OutboxEmail.objects.filter(pk=row.pk).update(
        status=OutboxEmail.Status.FAILED if gave_up else OutboxEmail.Status.PENDING,
        attempts=attempts,
        next_attempt_at=timezone.now() + _retry_delay(attempts),
        locked_until=None,
        last_error=f"{type(exc).__name__}: {exc}"[:2000],
    )
