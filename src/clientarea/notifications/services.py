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
import secrets
import smtplib
from collections.abc import Iterable
from datetime import datetime, timedelta
from email.utils import formataddr
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


REDACTED = "[link removed after sending]"


def email_queue(
    *,
    to_email: str,
    subject: str,
    body: str,
    kind: str = OutboxEmail.Kind.GENERAL,
    account: Account | None = None,
    to_name: str = "",
    redact: Iterable[str] = (),
) -> OutboxEmail:
    """Write one email to the outbox (inside the caller's transaction).

    Every string in `redact` (a one-time link) is removed from the stored text as soon as
    the email is delivered or given up on, so no usable secret outlives its delivery."""
    after = body
    for secret in redact:
        if secret:
            after = after.replace(secret, REDACTED)
    return OutboxEmail.objects.create(
        to_email=to_email,
        to_name=to_name,
        subject=subject[:300],
        body_text=body,
        body_after_send=after if after != body else "",
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
    redact: Iterable[str] = (),
) -> OutboxEmail:
    """Queue a personal email (invitation, reset link): never copied to contacts."""
    subject, body = render_email(template, {**context, "recipient_name": to_name})
    return email_queue(
        to_email=to_email,
        to_name=to_name,
        subject=subject,
        body=body,
        kind=kind,
        account=account,
        redact=redact,
    )


MAX_RETRY_DELAY = timedelta(hours=6)


def retry_delay(attempts: int) -> timedelta:
    """Back-off after the `attempts`-th failed attempt: base * 2**(attempts-1), capped."""
    seconds = settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** min(max(attempts - 1, 0), 30)
    return min(timedelta(seconds=seconds), MAX_RETRY_DELAY)


def _claim(batch_size: int, now: datetime) -> tuple[str, list[OutboxEmail]]:
    """Claim due rows for this worker. SKIP LOCKED lets several workers share the outbox;
    the claim (status SENDING + locked_until + claim_token) is committed before any network
    I/O so a slow mail server never holds a database lock, and a crashed worker's claim
    expires."""
    token = secrets.token_hex(16)
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
        OutboxEmail.objects.filter(pk__in=[r.pk for r in rows]).update(
            status=OutboxEmail.Status.SENDING,
            locked_until=now + timedelta(seconds=CLAIM_SECONDS),
            claim_token=token,
        )
    return token, rows


def _still_ours(row: OutboxEmail, token: str) -> bool:
    """Re-check the claim just before sending; refresh it so it cannot lapse mid-send.
    A row another worker took over (after our claim expired) or already sent is skipped:
    nothing is ever sent twice by a retry."""
    now = timezone.now()
    return bool(
        OutboxEmail.objects.filter(
            pk=row.pk, status=OutboxEmail.Status.SENDING, claim_token=token
        ).update(locked_until=now + timedelta(seconds=CLAIM_SECONDS))
    )


def _is_permanent(exc: Exception) -> bool:
    """A 5xx answer (unknown mailbox, refused recipient): retrying will not help."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(500 <= code < 600 for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return False


def _is_connection_error(exc: Exception) -> bool:
    return isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError | TimeoutError)


def outbox_deliver_due(*, batch_size: int = 50, now: datetime | None = None) -> dict[str, int]:
    """Send what is due (as of `now`). Returns counts of sent and failed attempts.

    Each row is marked SENT right after the server accepted it, so a failure later in the
    batch never makes an earlier row go out again. When the server disappears mid-batch
    the rest of the batch is released to be retried with back-off."""
    now = now or timezone.now()
    token, rows = _claim(batch_size, now)
    stats = {"sent": 0, "failed": 0}
    if not rows:
        return stats
    connection = get_connection(fail_silently=False)
    try:
        try:
            connection.open()
        except Exception as exc:  # the server is down: every claimed row waits its turn
            for row in rows:
                _record_failure(row, exc, token)
                stats["failed"] += 1
            return stats
        for index, row in enumerate(rows):
            if not _still_ours(row, token):
                continue
            try:
                delivered = _message_for(row, connection).send()
                if not delivered:
                    raise smtplib.SMTPException("The mail backend did not accept the message.")
            except Exception as exc:
                _record_failure(row, exc, token)
                stats["failed"] += 1
                if _is_connection_error(exc):
                    for rest in rows[index + 1 :]:
                        _record_failure(rest, exc, token)
                        stats["failed"] += 1
                    break
            else:
                _record_sent(row)
                stats["sent"] += 1
    finally:
        # Closing a connection to a server that just went away is not worth an error.
        with contextlib.suppress(Exception):
            connection.close()
    return stats


def _message_for(row: OutboxEmail, connection: Any) -> EmailMessage:
    to = formataddr((row.to_name, row.to_email)) if row.to_name else row.to_email
    domain = settings.SITE_URL.split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "localhost"
    return EmailMessage(
        subject=row.subject,
        body=row.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        connection=connection,
        # Stable per row: should a crash ever re-send one, mail clients fold the copies.
        headers={"Message-ID": f"<outbox-{row.pk}@{domain}>"},
    )


def _finished_body(row: OutboxEmail) -> dict[str, str]:
    if row.body_after_send:
        return {"body_text": row.body_after_send, "body_after_send": ""}
    return {}


def _record_sent(row: OutboxEmail) -> None:
    # Whatever happened to the claim meanwhile, this row went out: mark it so that no other
    # worker sends it again.
    OutboxEmail.objects.filter(pk=row.pk).update(
        status=OutboxEmail.Status.SENT,
        sent_at=timezone.now(),
        attempts=row.attempts + 1,
        locked_until=None,
        last_error="",
        **_finished_body(row),
    )


def _record_failure(row: OutboxEmail, exc: Exception, token: str) -> None:
    attempts = row.attempts + 1
    gave_up = attempts >= settings.OUTBOX_MAX_ATTEMPTS or _is_permanent(exc)
    logger.warning("Email %s attempt %s failed: %s", row.pk, attempts, type(exc).__name__)
    OutboxEmail.objects.filter(
        pk=row.pk, claim_token=token, status=OutboxEmail.Status.SENDING
    ).update(
        status=OutboxEmail.Status.FAILED if gave_up else OutboxEmail.Status.PENDING,
        attempts=attempts,
        next_attempt_at=timezone.now() + retry_delay(attempts),
        locked_until=None,
        last_error=f"{type(exc).__name__}: {exc}"[:2000],
        **(_finished_body(row) if gave_up else {}),
    )


@transaction.atomic
def outbox_retry(*, email: OutboxEmail) -> bool:
    """Staff: put an email that was given up on back in the queue, due now."""
    return bool(
        OutboxEmail.objects.filter(pk=email.pk, status=OutboxEmail.Status.FAILED).update(
            status=OutboxEmail.Status.PENDING,
            next_attempt_at=timezone.now(),
            attempts=0,
            locked_until=None,
        )
    )
