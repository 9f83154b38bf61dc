"""Account security: tracked sessions, recovery codes, throttling buckets and the
account's "require two-factor" setting. TOTP devices themselves are django-otp's."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AccountSecurity(models.Model):
    """Per-account security settings chosen by the owner (no row: the defaults)."""

    account = models.OneToOneField(
        "accounts.Account", on_delete=models.CASCADE, related_name="security"
    )
    require_two_factor = models.BooleanField(
        default=False, help_text="Every user must have two-factor authentication to use it."
    )
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "account security settings"

    def __str__(self) -> str:
        return f"Security of account {self.account_id}"


class TrackedSessionQuerySet(models.QuerySet["TrackedSession"]):
    def active(self) -> TrackedSessionQuerySet:
        return self.filter(ended_at__isnull=True)


class TrackedSession(models.Model):
    """One login session of a user: listed on the Security page, ended from there, by
    the owner's Revoke Access, by a password or 2FA change, or by the idle/absolute
    timeouts. The session itself only carries a random id whose SHA-256 is stored here,
    so this table holds nothing that would let anyone take a session over."""

    class EndReason(models.TextChoices):
        LOGOUT = "logout", "Logged out"
        USER = "user", "Ended by the user"
        IDLE = "idle", "Idle timeout"
        LIFETIME = "lifetime", "Maximum lifetime reached"
        PASSWORD = "password", "Password changed"
        TWO_FACTOR = "two_factor", "Two-factor authentication changed"
        EMAIL = "email", "Email address changed"
        REVOKED = "revoked", "Access to the account revoked"
        STAFF = "staff", "Ended by staff"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="tracked_sessions"
    )
    digest = models.CharField(max_length=64, unique=True)
    account_id = models.BigIntegerField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)

    objects = TrackedSessionQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["user", "ended_at", "-last_seen_at"]),
            # Retention (sessions_prune): sessions that ended, or open ones last seen,
            # before the cutoff, found by index whatever the table's size.
            models.Index(fields=["ended_at"], name="security_session_ended"),
            models.Index(
                fields=["last_seen_at"],
                condition=models.Q(ended_at__isnull=True),
                name="security_session_open_seen",
            ),
        ]

    def __str__(self) -> str:
        return f"Session {self.pk} of {self.user_id}"

    @property
    def device(self) -> str:
        return describe_user_agent(self.user_agent)


def describe_user_agent(ua: str) -> str:
    """A short, human description of a User-Agent string ("Firefox on Linux")."""
    if not ua:
        return "Unknown device"
    browser = next(
        (
            name
            for token, name in (
                ("Edg/", "Edge"),
                ("OPR/", "Opera"),
                ("Firefox/", "Firefox"),
                ("Chrome/", "Chrome"),
                ("Safari/", "Safari"),
                ("curl/", "curl"),
            )
            if token in ua
        ),
        "Browser",
    )
    system = next(
        (
            name
            for token, name in (
                ("Android", "Android"),
                ("iPhone", "iPhone"),
                ("iPad", "iPad"),
                ("Windows", "Windows"),
                ("Mac OS X", "macOS"),
                ("Linux", "Linux"),
            )
            if token in ua
        ),
        "",
    )
    return f"{browser} on {system}" if system else browser


class RecoveryCode(models.Model):
    """A one-time recovery code, stored only as its SHA-256 (the codes carry 120 random
    bits, so a fast hash is enough: ASVS 6.5.2)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="recovery_codes"
    )
    digest = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "digest"], name="recovery_code_unique")
        ]

    def __str__(self) -> str:
        return f"Recovery code {self.pk} of {self.user_id}"


class ThrottleBucket(models.Model):
    """Failures counted for one (scope, key) - e.g. logins for one (email, address) pair,
    one email, one address or one device cookie (security.throttle). Keys are stored as
    keyed hashes (HMAC with SECRET_KEY), so the table holds no email addresses or IPs."""

    scope = models.CharField(max_length=40)
    key_digest = models.CharField(max_length=64)
    failures = models.PositiveIntegerField(default=0)
    window_started_at = models.DateTimeField(default=timezone.now)
    blocked_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key_digest"], name="throttle_unique_key")
        ]
        # Retention (throttle_prune): counters whose window started before the cutoff.
        indexes = [models.Index(fields=["window_started_at"], name="security_throttle_window")]

    def __str__(self) -> str:
        return f"{self.scope} {self.key_digest[:8]}"
