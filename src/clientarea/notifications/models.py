"""The durable outbox: every email is a row written in the transaction that caused it."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from clientarea.accounts.permissions import EmailKind


class OutboxEmail(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Gave up"
        # Not sent: by the time the worker came to it, its recipient was no longer
        # entitled to it (access ended, permission removed, contact changed).
        WITHHELD = "withheld", "Not sent (no longer entitled)"

    # The one list of kinds (accounts.permissions.EmailKind); who may receive and read
    # each is the policy's (accounts.policy.Access.email_kinds).
    Kind = EmailKind

    class Audience(models.TextChoices):
        """Why this recipient gets this email: re-checked by the worker just before
        sending, so access that ended after the email was queued receives nothing."""

        OWNER = "owner", "The account owner"
        MEMBER = "member", "A person with access to the account"
        CONTACT = "contact", "A secondary contact"
        PERSONAL = "personal", "The person it is about"
        # The provider's support staff (settings.SUPPORT_STAFF_EMAIL): not the account's
        # email, kept with no account, so no customer's Email History lists it.
        STAFF = "staff", "The provider's staff"

    account = models.ForeignKey(
        "accounts.Account",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="emails",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.GENERAL)
    audience = models.CharField(max_length=10, choices=Audience.choices, default=Audience.PERSONAL)
    # Who the row is for, when it is a person with a login (owner, member, the addressee
    # of a personal email) or a contact: what the worker re-checks, and whose own
    # personal emails Email History shows them.
    recipient_user = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recipient_contact = models.ForeignKey(
        "accounts.Contact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The one service or domain a product or domain email is about, as a resource-scope
    # kind ("service", "domain") and id: a sub-account limited to chosen items receives
    # and reads only those about its items. Not a foreign key: notifications does not
    # depend on the apps that own the items, and the record outlives them.
    about_kind = models.CharField(max_length=20, blank=True)
    about_id = models.PositiveBigIntegerField(null=True, blank=True)
    to_email = models.EmailField(max_length=254)
    to_name = models.CharField(max_length=300, blank=True)
    subject = models.CharField(max_length=300)
    body_text = models.TextField()
    # What `body_text` becomes once the email is delivered (or given up on): the same text
    # with one-time secrets such as an invitation link removed, so that only their hashes
    # stay in the database. Empty: keep the body as it is.
    body_after_send = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    locked_until = models.DateTimeField(null=True, blank=True)
    # Which worker's claim this is; a worker sends a row only while its claim still holds.
    claim_token = models.CharField(max_length=32, blank=True)
    # Set just before the message goes to the mail server, cleared once the outcome is
    # recorded. Still set when a claim has lapsed: the worker stopped mid-send, so the
    # server may have accepted it (SMTP gives no way to ask). It is sent again with the
    # same Message-ID, so the recipient's mail system can fold a duplicate.
    send_started_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            # Email History: the account's emails newest first, with every column it filters
            # on (who may read which), so that its page count reads the index alone, not
            # every email of the account from the table (bench_scale: 22,000 emails, 0.7 s
            # for the count when they lay scattered through the table, 40 ms from the index).
            models.Index(
                fields=[
                    "account",
                    "-created_at",
                    "kind",
                    "audience",
                    "recipient_user",
                    "about_kind",
                    "about_id",
                ],
                name="notifications_history",
            ),
            # Retention (outbox_bodies_prune): delivered emails still holding their text,
            # by when they were sent; those already cleared are not in it.
            models.Index(
                fields=["sent_at"],
                condition=models.Q(status="sent") & ~models.Q(body_text="", body_after_send=""),
                name="notifications_sent_with_text",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to_email} ({self.status})"

    @property
    def about(self) -> tuple[str, int] | None:
        if self.about_kind and self.about_id is not None:
            return self.about_kind, self.about_id
        return None

    @property
    def is_personal(self) -> bool:
        return self.kind == EmailKind.PERSONAL

    @property
    def readable_body(self) -> str | None:
        """The text Email History may show: never while a one-time link is still in it
        (before it is sent), whoever asks."""
        return None if self.body_after_send else self.body_text


class MailServerState(models.Model):
    """Whether the mail server is reachable, as every worker process last found it: one
    row (pk 1), written only when that changes and on each failed try during an outage.

    A failure that is the server's (connection refused, a timeout or a 4xx while
    connecting, greeting or logging in, a 421, a connection lost before the server said
    anything about the message) is no fault of the emails: they stay pending with their
    attempts unchanged, and every worker waits until ``retry_at`` before connecting again
    (exponential, up to OUTBOX_SERVER_RETRY_MAX_SECONDS), so several workers do not each
    hammer a server that is down. Kept in the database because the workers share nothing
    else; see ``notifications.mail_server``."""

    # Unreachable since this moment (the first failed try of this outage); None: reachable.
    unreachable_since = models.DateTimeField(null=True, blank=True)
    # No worker connects before this moment (the back-off, or one worker's probe in flight).
    retry_at = models.DateTimeField(null=True, blank=True)
    # Failed tries in this outage: the back-off doubles with each.
    failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        if self.unreachable_since is None:
            return "Mail server reachable"
        return f"Mail server unreachable since {self.unreachable_since:%Y-%m-%d %H:%M:%S}"
