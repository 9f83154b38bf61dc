"""Reads of domains shared by views, tiles and tests."""

from __future__ import annotations

from django.db.models import QuerySet

from clientarea.accounts.policy import Access, scope_filter

from .models import Domain
from .scope import KIND

LIVE_STATUSES = (
    Domain.Status.PENDING,
    Domain.Status.PENDING_TRANSFER,
    Domain.Status.ACTIVE,
    Domain.Status.EXPIRED,
)


def domain_list_for(*, access: Access, status: str = "") -> QuerySet[Domain]:
    """The domains this access reaches: the account's, within its scope."""
    domains = scope_filter(Domain.objects.filter(account=access.account), access, KIND)
    if status:
        domains = domains.filter(status=status)
    return domains.order_by("name", "id")


def domain_count_live(access: Access) -> int:
    """Domains the account still holds (not cancelled or transferred away) that this
    access reaches."""
    domains = Domain.objects.filter(account=access.account, status__in=LIVE_STATUSES)
    return scope_filter(domains, access, KIND).count()
