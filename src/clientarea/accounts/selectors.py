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
