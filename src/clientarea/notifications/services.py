"""Queueing and delivering email through the outbox.

The grant governs email as it governs pages. Every email has a kind
(``accounts.permissions.EmailKind``) and goes through one of three doors here:

- ``notify``: news about an account (general, invoice, support, product, domain). It goes
  to the owner, to the confirmed secondary contacts that opted in to the kind, and to
  named people (a payer, a ticket's opener) only while their access covers the kind.
- ``notify_owner``: an owner-only security notice, to the owner alone.
- ``email_send_to_person``: a personal email (an invitation, a change to someone's own
  access or login), to its addressee alone.
- ``email_send_to_staff``: a note to the provider's support staff, never the account's.

Rows are written inside the caller's transaction; the worker delivers later, so a
mail-server outage delays mail but never loses it, and a rolled-back action sends
nothing. Just before sending, the worker asks again whether the recipient is still
entitled (``outbox_recipient_entitled``): access that ended after an email was queued
receives nothing.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import smtplib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import formataddr
from typing import Any

from django.conf import settings
from django.core.mail import BadHeaderError, EmailMessage, get_connection
from django.db import transaction
from django.template import Context, Engine
from django.utils import timezone

from clientarea.accounts.models import Account, Contact, User
from clientarea.accounts.permissions import ACCOUNT_EMAIL_KINDS, EmailKind
from clientarea.accounts.policy import (
    is_owner,
    may_contact_receive,
    may_receive_email,
    owner_receives,
)
from clientarea.core.retention import update_in_batches

from .mail_server import describe, mail_server_failed, mail_server_gate, mail_server_reached
from .models import OutboxEmail

logger = logging.getLogger(__name__)

Audience = OutboxEmail.Audience


def header_safe(value: str) -> str:
    """One line, whatever was stored: control characters (CR, LF, NUL, escapes) and line
    or paragraph separators become spaces, runs of spaces one. Subjects and display names
    built from customer data (a company name) can then never break an email header."""
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in value)
    return " ".join(cleaned.split())


def render_email(template: str, context: dict[str, Any]) -> tuple[str, str]:
    """Render `<template>.txt`: the first line is the subject, the rest the body.

    Plain text, so never HTML-escaped (a `<` in a ticket subject or a company's `&` reaches
    the reader as typed), whether or not the template says `{% autoescape off %}`."""
    ctx = {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL, **context}
    compiled = Engine.get_default().get_template(f"{template}.txt")
    rendered = compiled.render(Context(ctx, autoescape=False)).strip()
    subject, _, body = rendered.partition("\n")
    return header_safe(subject), body.strip() + "\n"


REDACTED = "[link removed after sending]"


def email_queue(
    *,
    to_email: str,
    subject: str,
    body: str,
    kind: str = EmailKind.GENERAL,
    account: Account | None = None,
    to_name: str = "",
    redact: Iterable[str] = (),
    audience: str = Audience.PERSONAL,
    recipient_user: User | None = None,
    recipient_contact: Contact | None = None,
    about: tuple[str, int] | None = None,
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
        to_name=header_safe(to_name)[:300],
        subject=header_safe(subject)[:300],
        body_text=body,
        body_after_send=after if after != body else "",
        kind=kind,
        account=account,
        audience=audience,
        recipient_user=recipient_user,
        recipient_contact=recipient_contact,
        about_kind=about[0] if about else "",
        about_id=about[1] if about else None,
    )


@dataclass(frozen=True)
class Recipient:
    name: str
    email: str
    audience: str
    user: User | None = None
    contact: Contact | None = None


def recipients_for(
    *,
    account: Account,
    kind: str,
    include_owner: bool = True,
    include_contacts: bool = True,
    people: Iterable[User] = (),
    about: tuple[str, int] | None = None,
) -> list[Recipient]:
    """Who is sent `account`'s email of `kind` (about the item `about`), each address
    once: the owner, the named people whose access covers the kind (and the item, when
    limited to chosen items) right now, the confirmed contacts opted in."""
    if kind not in ACCOUNT_EMAIL_KINDS:
        raise ValueError(f"{kind!r} is not a kind of account email.")
    if account.closed_at is not None:
        return []  # a closed account's news reaches nobody: nobody can select it
    found: list[Recipient] = []
    owner = account.owner
    # The owner receives the kinds they have not turned off (Emails You Receive).
    owner_wants = owner_receives(account, kind)
    if include_owner and owner_wants:
        found.append(Recipient(owner.get_full_name(), owner.email, Audience.OWNER, user=owner))
    for person in people:
        if is_owner(person, account):
            if not owner_wants:
                continue
            found.append(
                Recipient(person.get_full_name(), person.email, Audience.OWNER, user=person)
            )
        elif may_receive_email(person, kind, account, about=about):
            found.append(
                Recipient(person.get_full_name(), person.email, Audience.MEMBER, user=person)
            )
    if include_contacts:
        for contact in Contact.objects.filter(account=account, confirmed_at__isnull=False).order_by(
            "pk"
        ):
            if may_contact_receive(contact, kind, account, about=about):
                found.append(
                    Recipient(contact.name, contact.email, Audience.CONTACT, contact=contact)
                )
    seen: set[str] = set()
    unique: list[Recipient] = []
    for recipient in found:
        if recipient.email.lower() not in seen:
            seen.add(recipient.email.lower())
            unique.append(recipient)
    return unique


def notify(
    *,
    account: Account,
    kind: str,
    template: str,
    context: dict[str, Any],
    include_owner: bool = True,
    include_contacts: bool = True,
    people: Iterable[User] = (),
    about: tuple[str, int] | None = None,
) -> list[OutboxEmail]:
    """Queue account news of `kind` for everyone entitled to it (see `recipients_for`).
    A product or domain email about one service or domain names it in `about`
    (("service", id) or ("domain", id)): sub-accounts limited to chosen items receive
    and read it only when the item is theirs."""
    rows = []
    for recipient in recipients_for(
        account=account,
        kind=kind,
        include_owner=include_owner,
        include_contacts=include_contacts,
        people=people,
        about=about,
    ):
        subject, body = render_email(
            template, {**context, "account": account, "recipient_name": recipient.name}
        )
        rows.append(
            email_queue(
                to_email=recipient.email,
                to_name=recipient.name,
                subject=subject,
                body=body,
                kind=kind,
                account=account,
                audience=recipient.audience,
                recipient_user=recipient.user,
                recipient_contact=recipient.contact,
                about=about,
            )
        )
    return rows


def notify_owner(*, account: Account, template: str, context: dict[str, Any]) -> OutboxEmail:
    """Queue an owner-only security notice (a password revealed by a sub-account, someone
    joining): never copied to contacts, readable in Email History by the owner alone."""
    owner = account.owner
    subject, body = render_email(
        template, {**context, "account": account, "recipient_name": owner.get_full_name()}
    )
    return email_queue(
        to_email=owner.email,
        to_name=owner.get_full_name(),
        subject=subject,
        body=body,
        kind=EmailKind.SECURITY,
        account=account,
        audience=Audience.OWNER,
        recipient_user=owner,
    )


def email_send_to_person(
    *,
    to_email: str,
    to_name: str = "",
    template: str,
    context: dict[str, Any],
    account: Account | None = None,
    redact: Iterable[str] = (),
    to_user: User | None = None,
) -> OutboxEmail:
    """Queue a personal email (an invitation, a reset link, a change to someone's own
    access): to its addressee alone, and in Email History theirs alone. `to_user` is the
    person when they have a login; by default, the user with that address."""
    if to_user is None:
        to_user = User.objects.filter(email__iexact=to_email).first()
    subject, body = render_email(template, {**context, "recipient_name": to_name})
    return email_queue(
        to_email=to_email,
        to_name=to_name,
        subject=subject,
        body=body,
        kind=EmailKind.PERSONAL,
        account=account,
        redact=redact,
        audience=Audience.PERSONAL,
        recipient_user=to_user,
    )


def email_send_to_staff(*, template: str, context: dict[str, Any]) -> OutboxEmail | None:
    """Queue a note to the provider's support staff (settings.SUPPORT_STAFF_EMAIL; none
    when it is empty): a new customer ticket, a customer's reply. It is not the account's
    email: kept with no account and its own audience, so no customer's Email History
    lists it, whatever their grant."""
    to_email = settings.SUPPORT_STAFF_EMAIL
    if not to_email:
        return None
    name = f"{settings.SITE_NAME} Support"
    subject, body = render_email(template, {**context, "recipient_name": name})
    return email_queue(
        to_email=to_email,
        to_name=name,
        subject=subject,
        body=body,
        kind=EmailKind.SUPPORT,
        account=None,
        audience=Audience.STAFF,
    )


def outbox_recipient_entitled(row: OutboxEmail) -> bool:
    """Is the recipient of a queued row still entitled to it, right now? The same rules
    as when it was queued: the owner is still the owner, a member's access still covers
    the kind, a contact still exists, is confirmed at that address and opted in."""
    if row.audience in (Audience.PERSONAL, Audience.STAFF) or row.account_id is None:
        return True
    account = Account.objects.select_related("owner").filter(pk=row.account_id).first()
    if account is None or account.closed_at is not None:
        return False
    # The owner was just read with the account: no second query for the commonest case.
    person = account.owner if row.recipient_user_id == account.owner_id else row.recipient_user
    # A person's address may have changed since (often because the old mailbox was
    # lost): the old address is sent nothing more of the account's.
    still_theirs = person is not None and person.email.lower() == row.to_email.lower()
    if row.audience == Audience.OWNER:
        return (
            still_theirs
            and row.recipient_user_id == account.owner_id
            and owner_receives(account, row.kind)
        )
    if row.audience == Audience.MEMBER:
        return still_theirs and may_receive_email(person, row.kind, account, about=row.about)
    if row.audience == Audience.CONTACT:
        contact = row.recipient_contact
        return (
            contact is not None
            and contact.email.lower() == row.to_email.lower()
            and may_contact_receive(contact, row.kind, account, about=row.about)
        )
    return False


MAX_RETRY_DELAY = timedelta(hours=6)


def retry_delay(attempts: int) -> timedelta:
    """Back-off after the `attempts`-th failed attempt: base * 2**(attempts-1), capped."""
    seconds = settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** min(max(attempts - 1, 0), 30)
    return min(timedelta(seconds=seconds), MAX_RETRY_DELAY)


def _lease() -> timedelta:
    return timedelta(seconds=settings.OUTBOX_CLAIM_SECONDS)


IN_DOUBT = (
    "A worker stopped while sending this email: the mail server may have accepted it. "
    "Sent again with the same Message-ID, so a copy that did arrive can be folded."
)
CUT_OFF = (
    "The connection to the mail server was lost while sending this email: the server may "
    "have accepted it. It goes again with the same Message-ID."
)


def _claim(batch_size: int, now: datetime) -> tuple[str, list[OutboxEmail]]:
    """Claim due rows for this worker. SKIP LOCKED lets several workers share the outbox
    (a row another claim has locked is passed over, never waited for or taken twice); the
    claim (status SENDING + locked_until + claim_token) is committed before any network
    I/O so a slow mail server never holds a database lock, and a dead worker's claim
    lapses after OUTBOX_CLAIM_SECONDS.

    A lapsed claim whose send had begun (send_started_at) is in doubt: the worker died
    between starting the send and recording its outcome, and the server may have accepted
    the message. That attempt counts; the row is sent again (with the same Message-ID)
    unless it has used up its attempts, so a message that kills every worker sending it
    cannot stall the outbox for ever."""
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
        in_doubt = [r for r in rows if r.send_started_at is not None]
        OutboxEmail.objects.filter(pk__in=[r.pk for r in rows]).update(
            status=OutboxEmail.Status.SENDING,
            locked_until=now + _lease(),
            claim_token=token,
            send_started_at=None,
        )
        for row in in_doubt:
            row.attempts += 1
            logger.warning("Email %s: %s", row.pk, IN_DOUBT)
            gave_up = row.attempts >= settings.OUTBOX_MAX_ATTEMPTS
            OutboxEmail.objects.filter(pk=row.pk).update(
                attempts=row.attempts,
                last_error=IN_DOUBT,
                **(
                    {
                        "status": OutboxEmail.Status.FAILED,
                        "locked_until": None,
                        **_finished_body(row),
                    }
                    if gave_up
                    else {}
                ),
            )
            if gave_up:
                rows.remove(row)
    return token, rows


def _still_ours(row: OutboxEmail, token: str) -> bool:
    """Re-check the claim just before sending; renew it so it cannot lapse mid-send, and
    record that the send begins (see `_claim` for a worker that dies before the outcome is
    recorded). A row another worker took over (after our claim lapsed) or already sent is
    skipped: no retry ever sends a message that was recorded as sent."""
    now = timezone.now()
    return bool(
        OutboxEmail.objects.filter(
            pk=row.pk, status=OutboxEmail.Status.SENDING, claim_token=token
        ).update(locked_until=now + _lease(), send_started_at=now)
    )


def _is_permanent(exc: Exception) -> bool:
    """A 5xx answer (unknown mailbox, refused recipient): retrying will not help."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return bool(codes) and all(500 <= code < 600 for code in codes)
    if isinstance(exc, BadHeaderError):  # the same row would fail the same way forever
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return 500 <= exc.smtp_code < 600
    return False


def _is_connection_error(exc: Exception) -> bool:
    return isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionError | TimeoutError)


def _may_be_the_servers(exc: Exception, answered: bool) -> bool:
    """A failure with one email that may as well be the server's: a 421 to MAIL FROM (the
    same sender for every email: a server shutting down, the sender throttled), or the
    connection lost before MAIL FROM was answered. A 421 to one recipient is not: it is
    about that address."""
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return exc.smtp_code == 421
    return _is_connection_error(exc) and not answered


def _open(connection: Any) -> None:
    """Connect, TLS, greeting, login, and EHLO (smtplib would otherwise send it with the
    first email): all of it the same for every email, so a failure here is the server's."""
    connection.open()
    hello = getattr(getattr(connection, "connection", None), "ehlo_or_helo_if_needed", None)
    if hello is not None:
        hello()


class _Session:
    """The open SMTP session, as far as the worker needs to know it: whether the server
    has answered the MAIL FROM of the email being sent (before that, nothing about it can
    have been stored), and whether smtplib has closed the connection (after a 421 or a
    lost connection). Another backend (console, locmem, demo mail) has no session: it is
    never lost and never answers."""

    def __init__(self, connection: Any) -> None:
        self.answered = False
        self._smtp: Any = getattr(connection, "connection", None)
        real_mail = getattr(self._smtp, "mail", None)
        if self._smtp is None or real_mail is None:
            self._smtp = None
            return

        def mail(*args: Any, **kwargs: Any) -> Any:
            reply = real_mail(*args, **kwargs)
            self.answered = True
            return reply

        self._smtp.mail = mail

    @property
    def lost(self) -> bool:
        return self._smtp is not None and getattr(self._smtp, "sock", None) is None


def outbox_deliver_due(*, batch_size: int = 50, now: datetime | None = None) -> dict[str, int]:
    """Send what is due (as of `now`). Returns counts of sent and failed attempts.

    Each row is marked SENT right after the server accepted it, so a failure later in the
    batch never makes an earlier row go out again.

    Whose failure is it? Only opening a connection (connect, TLS, greeting, EHLO, login)
    is the server's: it uses up no attempt, the claimed rows go back to pending as they
    were, and every worker backs off (``mail_server``). Once a session is open, whatever
    goes wrong while sending one email (any reply to its MAIL FROM, RCPT TO or DATA,
    a 421 included; the connection lost) is that email's: one attempt, and its own
    back-off. Were such a failure the server's, an email the server fails on (a relay's
    421 for one address, a message it hangs up on) would go back unchanged, head every
    batch and hold the whole outbox for good. A real outage still costs nothing beyond
    the one email in flight when it began: the worker reconnects to go on with the rest,
    and that connection failing is the server's. And when the next email fails the same
    server-like way (`_may_be_the_servers`) with nothing sent between, the server is
    failing every email (a throttled sender): that one and the rest wait unchanged and
    the workers back off, so such a server costs one attempt per back-off, not one per
    email queued. The first has paid, so the queue still moves on."""
    now = now or timezone.now()
    stats = {"sent": 0, "failed": 0, "withheld": 0}
    gate = mail_server_gate(now)
    if not gate.open:  # the server is down: no worker connects before the back-off ends
        return stats
    token, rows = _claim(batch_size, now)
    if not rows and not gate.probing:  # (a probe connects anyway: is the outage over?)
        return stats
    connection = get_connection(fail_silently=False)
    try:
        try:
            _open(connection)
        except Exception as exc:  # the server's failure: nothing was sent
            _release(rows, exc, token)
            mail_server_failed(exc, now=now, probing=gate.probing)
            return stats
        # A probe ends the outage once the server has taken an email (or the probe had
        # none to offer): connecting alone does not prove it, a throttled sender connects.
        probing = gate.probing
        session = _Session(connection)
        suspect = False  # the last email failed in a way that may be the server's
        for index, row in enumerate(rows):
            if session.lost:  # the last email's failure closed it: a new one for the rest
                with contextlib.suppress(Exception):
                    connection.close()
                try:
                    _open(connection)
                except Exception as exc:
                    _release(rows[index:], exc, token)
                    mail_server_failed(exc, now=now, probing=probing)
                    probing = False
                    break
                session = _Session(connection)
            if not _still_ours(row, token):
                continue
            if not outbox_recipient_entitled(row):
                _record_withheld(row)
                stats["withheld"] += 1
                continue
            session.answered = False
            try:
                delivered = _message_for(row, connection).send()
                if not delivered:
                    raise smtplib.SMTPException("The mail backend did not accept the message.")
            except Exception as exc:
                doubtful = _may_be_the_servers(exc, session.answered)
                if doubtful and suspect:
                    _release(rows[index:], exc, token)
                    mail_server_failed(exc, now=now, probing=probing)
                    probing = False
                    break
                suspect = doubtful
                if _is_connection_error(exc) and session.answered:
                    # Lost after the server answered about this email (perhaps after the
                    # final dot): it may have kept the message without its 250 reaching
                    # us, so a retry may duplicate it.
                    logger.warning("Email %s: %s", row.pk, CUT_OFF)
                _record_failure(row, exc, token)
                stats["failed"] += 1
            else:
                suspect = False
                _record_sent(row)
                stats["sent"] += 1
                if probing:
                    mail_server_reached(gate.state)
                    probing = False
        if probing:  # it answered about every email it was offered, or had none
            mail_server_reached(gate.state)
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
        send_started_at=None,
        last_error="",
        **_finished_body(row),
    )


def _record_withheld(row: OutboxEmail) -> None:
    OutboxEmail.objects.filter(pk=row.pk).update(
        status=OutboxEmail.Status.WITHHELD,
        locked_until=None,
        send_started_at=None,
        last_error="The recipient was no longer entitled to this email when it was due.",
        **_finished_body(row),
    )


def _release(rows: list[OutboxEmail], exc: Exception, token: str) -> None:
    """The server's failure, not theirs: back to pending with their attempts and due time
    unchanged (one UPDATE), the error kept so staff see why they wait."""
    if not rows:
        return
    OutboxEmail.objects.filter(
        pk__in=[r.pk for r in rows], claim_token=token, status=OutboxEmail.Status.SENDING
    ).update(
        status=OutboxEmail.Status.PENDING,
        locked_until=None,
        send_started_at=None,
        last_error=f"Mail server unavailable: {describe(exc)}"[:2000],
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
        send_started_at=None,
        last_error=f"{type(exc).__name__}: {exc}"[:2000],
        **(_finished_body(row) if gave_up else {}),
    )


def outbox_bodies_prune(*, now: datetime | None = None) -> int:
    """Retention (the worker's housekeeping): the text of emails delivered more than
    ``RETENTION_EMAIL_BODY_DAYS`` ago is cleared. Email History shows a delivered email's
    text until then; the row stays for good (recipient, subject, kind, status, dates), and
    Email History says the text is no longer kept. Emails given up on keep their text:
    staff may send them again. How many were cleared."""
    days = int(getattr(settings, "RETENTION_EMAIL_BODY_DAYS", 90))
    cutoff = (now or timezone.now()) - timedelta(days=days)
    old = OutboxEmail.objects.filter(status=OutboxEmail.Status.SENT, sent_at__lt=cutoff).exclude(
        body_text="", body_after_send=""
    )
    return update_in_batches(old, body_text="", body_after_send="")


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
