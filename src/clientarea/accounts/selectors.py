"""Reads of identity and access that several views share."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Account, Contact, Invitation, Membership, User


def membership_list_for(account: Account) -> QuerySet[Membership]:
    """The account's sub-accounts (any status), people with access first. One query."""
    return (
        Membership.objects.filter(account=account)
        .select_related("user")
        .order_by("status", "user__first_name", "user__last_name", "user__email", "pk")
    )


def lost_memberships_of(user: User, account_id: int | None = None) -> list[Membership]:
    """The person's own memberships that were revoked or have expired, on open accounts
    they do not use any more (neither owner nor with a usable membership there). Only
    their own rows: nothing about accounts they never belonged to."""
    rows = (
        Membership.objects.filter(user=user, account__closed_at__isnull=True)
        .exclude(account__owner=user)
        .select_related("account")
        .order_by("account__company_name", "account_id")
    )
    if account_id is not None:
        rows = rows.filter(account_id=account_id)
    return [m for m in rows if not m.is_usable()]


def invitation_pending_list_for(account: Account) -> QuerySet[Invitation]:
    """Invitations still waiting for an answer (including ones whose link lapsed)."""
    return (
        Invitation.objects.filter(
            account=account, status__in=[Invitation.Status.PENDING, Invitation.Status.EXPIRED]
        )
        .select_related("invited_by")
        .order_by("-sent_at", "-pk")
    )


def account_people(account: Account) -> list[User]:
    """The owner and every sub-account (any status): the activity log's user filter."""
    members = [m.user for m in membership_list_for(account)]
    return [account.owner, *members]


def contact_list_for(account: Account) -> QuerySet[Contact]:
    return Contact.objects.filter(account=account).order_by("name", "pk")
