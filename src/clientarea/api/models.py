"""Personal access tokens: what a person lets a script do on one account.

A token carries a subset of its creator's grant (permissions and resource scope, stored
like a membership's), a mandatory expiry and optionally the client networks it may be
used from. What it may do is never read from these columns alone: at every request the
creator's current access is asked again and the token carries the intersection
(``services.token_authenticate``), so a stored grant is never trusted on its own.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from clientarea.accounts import permissions
from clientarea.accounts.scope import Scope, scope_from_json
from clientarea.core.validators import validate_single_line


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def live(self, now: Any = None) -> ApiTokenQuerySet:
        """Not revoked and not expired (the creator's access is asked at use)."""
        return self.filter(revoked_at__isnull=True, expires_at__gt=now or timezone.now())


class ApiToken(models.Model):
    class EndReason(models.TextChoices):
        REVOKED = "revoked", "Revoked"
        ACCESS_ENDED = "access_ended", "Its creator's access ended"
        OWNERSHIP_MOVED = "ownership_moved", "The account changed owner"

    account = models.ForeignKey(
        "accounts.Account", on_delete=models.CASCADE, related_name="api_tokens"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    # The creator was the owner when they made it: the token dies when ownership moves.
    created_as_owner = models.BooleanField(default=False, editable=False)
    # The Users power (manage users and invitations through the API): only a token its
    # creator made as the owner and chose so for; it holds while they are the owner.
    manages_users = models.BooleanField(default=False, editable=False)
    name = models.CharField(max_length=100, validators=[validate_single_line])
    # SHA-256 of the secret (see tokens.py); the secret itself is never stored.
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=16, editable=False)  # "ca_pat_AbCd"
    permissions = models.JSONField(default=list)
    # As Membership.scope: null = every service and domain its creator reaches.
    scope = models.JSONField(null=True, blank=True, default=None)
    # CIDR ranges it may be used from (empty: any address).
    allowed_networks = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    end_reason = models.CharField(max_length=20, choices=EndReason.choices, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["account", "-created_at"]),
            models.Index(fields=["created_by", "account"]),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @property
    def permission_codes(self) -> frozenset[str]:
        return permissions.expand(self.permissions)

    @property
    def permission_labels(self) -> list[str]:
        return permissions.labels(self.permissions)

    @property
    def scope_items(self) -> Scope | None:
        return scope_from_json(self.scope)

    def is_live(self, now: Any = None) -> bool:
        return self.revoked_at is None and self.expires_at > (now or timezone.now())

    def status_label(self, now: Any = None) -> str:
        if self.revoked_at is not None:
            reason = self.EndReason(self.end_reason) if self.end_reason else None
            return str(reason.label) if reason else "Revoked"
        if self.expires_at <= (now or timezone.now()):
            return "Expired"
        return "Active"


class RateWindow(models.Model):
    """One token's request count in one fixed window of the rate limit, when the count is
    kept in the database (throttling.py says when): one upsert per request adds to it."""

    # Names the token (its id and a piece of its hash, see throttling.py): no foreign key,
    # so a token's deletion does not have to look for its windows (retention removes them).
    token_key = models.CharField(max_length=64)
    # The window's first second (Unix time): a whole multiple of the window's length.
    window_start = models.BigIntegerField()
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            # The upsert's conflict target: one row per token and window.
            models.UniqueConstraint(fields=["token_key", "window_start"], name="api_rate_window"),
        ]
        indexes = [
            # Retention deletes by age alone (the unique index leads with the token).
            models.Index(fields=["window_start"], name="api_ratewindow_start"),
        ]

    def __str__(self) -> str:
        return f"{self.token_key} @ {self.window_start}: {self.requests}"
