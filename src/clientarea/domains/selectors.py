"""Reads of domains shared by views, tiles and tests."""

from __future__ import annotations

from django.db.models import QuerySet

from clientarea.accounts.models import Account

from .models import Domain

LIVE_STATUSES = (
    Domain.Status.PENDING,
    Domain.Status.PENDING_TRANSFER,
    Domain.Status.ACTIVE,
    Domain.Status.EXPIRED,
)


def domain_list_for(*, account: Account, status: str = "") -> QuerySet[Domain]:
    domains = Domain.objects.filter(account=account)
    if status:
        domains = domains.filter(status=status)
    return domains.order_by("name", "id")


def domain_count_live(account: Account) -> int:
    """Domains the account still holds (not cancelled or transferred away)."""
    return Domain.objects.filter(account=account, status__in=LIVE_STATUSES).count()
