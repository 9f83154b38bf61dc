"""The dashboard's own attention items, from identity and access (no domain app): pending
invitations (owner) and two-factor authentication not yet on.

The domain apps register theirs (invoices, domains, services, tickets) in their
AppConfig.ready(); these are registered by the shell's own AppConfig.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from clientarea.accounts.models import Invitation, Membership
from clientarea.accounts.policy import Access
from clientarea.security.services import account_requires_two_factor
from clientarea.security.twofactor import user_has_two_factor

from .registry import (
    ATTENTION_LIMIT,
    AttentionItem,
    AttentionProvider,
    register_attention,
)
from .timefmt import when


def invitations_pending(access: Access) -> list[AttentionItem]:
    """The owner's invitations nobody has accepted yet (one query): a link that has run
    out needs Resend."""
    if not access.is_owner:
        return []
    now = timezone.now()
    rows = list(
        Invitation.objects.filter(account=access.account, status=Invitation.Status.PENDING)
        .only("pk", "email", "expires_at")
        .order_by("expires_at", "pk")[: ATTENTION_LIMIT + 1]
    )
    url = reverse("accounts:users")
    items = []
    for invitation in rows[:ATTENTION_LIMIT]:
        lapsed = invitation.expires_at <= now
        items.append(
            AttentionItem(
                title=f"Invitation to {invitation.email} not accepted yet",
                detail=(
                    f"The link expired {when(invitation.expires_at)}: resend it or cancel it."
                    if lapsed
                    else f"The link works until {when(invitation.expires_at)}."
                ),
                url=url,
                action="User Management",
                tone="warn" if lapsed else "info",
            )
        )
    if len(rows) > ATTENTION_LIMIT:
        items.append(
            AttentionItem(title="More pending invitations", url=url, action="User Management")
        )
    return items


def two_factor_missing(access: Access) -> list[AttentionItem]:
    """Two-factor authentication not yet on: for the person themselves (one query), and
    for the owner of an account that requires it, the people with access who lack it
    and so cannot use the account (two more queries)."""
    items = []
    if not user_has_two_factor(access.user):
        items.append(
            AttentionItem(
                title="Two-factor authentication is not on for your login",
                detail="A code from your phone at each login keeps the account safe "
                "even if your password leaks.",
                url=reverse("security:two_factor_setup"),
                action="Turn on two-factor",
                tone="warn",
            )
        )
    if access.is_owner and account_requires_two_factor(access.account.pk):
        with_device = TOTPDevice.objects.filter(confirmed=True).values("user_id")
        lacking = list(
            Membership.objects.usable()
            .filter(account=access.account)
            .exclude(user_id__in=with_device)
            .select_related("user")
            .order_by("user__email")[: ATTENTION_LIMIT + 1]
        )
        if lacking:
            names = ", ".join(m.user.get_full_name() for m in lacking[:ATTENTION_LIMIT])
            more = " and others" if len(lacking) > ATTENTION_LIMIT else ""
            items.append(
                AttentionItem(
                    title="People with access have no two-factor yet",
                    detail=(
                        f"{names}{more}: this account requires two-factor authentication, "
                        "so they cannot use it until they turn it on."
                    ),
                    url=reverse("accounts:users"),
                    action="User Management",
                    tone="warn",
                )
            )
    return items


def register() -> None:
    register_attention(AttentionProvider("accounts.two_factor", None, two_factor_missing, 70))
    register_attention(AttentionProvider("accounts.invitations", None, invitations_pending, 60))
