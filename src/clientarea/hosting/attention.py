"""The dashboard's hosting attention items: suspended services."""

from __future__ import annotations

from django.urls import reverse

from clientarea.accounts.policy import Access, scope_filter
from clientarea.core.registry import ATTENTION_LIMIT, AttentionItem

from .models import Service
from .scope import KIND


def services_suspended(access: Access) -> list[AttentionItem]:
    """Suspended services this access reaches (its scope included), in one query."""
    services = Service.objects.filter(account=access.account, status=Service.Status.SUSPENDED).only(
        "pk", "product_name", "domain"
    )
    rows = list(
        scope_filter(services, access, KIND).order_by("product_name", "pk")[: ATTENTION_LIMIT + 1]
    )
    items = [
        AttentionItem(
            title=f"{service.product_name} is suspended",
            detail=service.domain,
            url=reverse("hosting:detail", args=[service.pk]),
            action="View service",
            tone="danger",
        )
        for service in rows[:ATTENTION_LIMIT]
    ]
    if len(rows) > ATTENTION_LIMIT:
        items.append(
            AttentionItem(
                title="More suspended services",
                url=reverse("hosting:list") + "?status=suspended",
                action="View services",
                tone="info",
            )
        )
    return items
