"""The dashboard's domain attention items: domains expiring within 30 days, with Renew."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format

from clientarea.accounts.policy import Access, scope_filter
from clientarea.core.registry import ATTENTION_LIMIT, AttentionItem

from .models import EXPIRING_SOON_DAYS, Domain
from .scope import KIND


def domains_expiring(access: Access) -> list[AttentionItem]:
    """Registered domains this access reaches (its scope included) that expire within
    EXPIRING_SOON_DAYS, soonest first, in one query. Renew opens the domain's page (where
    its renewal is offered)."""
    today = timezone.localdate()
    domains = Domain.objects.filter(
        account=access.account,
        status=Domain.Status.ACTIVE,
        expiry_date__gte=today,
        expiry_date__lte=today + timedelta(days=EXPIRING_SOON_DAYS),
    ).only("pk", "name", "expiry_date", "auto_renew")
    rows = list(
        scope_filter(domains, access, KIND).order_by("expiry_date", "name")[: ATTENTION_LIMIT + 1]
    )
    items = []
    for domain in rows[:ATTENTION_LIMIT]:
        assert domain.expiry_date is not None
        days = (domain.expiry_date - today).days
        in_days = "today" if days == 0 else "tomorrow" if days == 1 else f"in {days} days"
        items.append(
            AttentionItem(
                title=f"{domain.unicode_name} expires {in_days}",
                detail=(
                    f"Expires {date_format(domain.expiry_date, 'j M Y')}; auto-renew is "
                    f"{'on' if domain.auto_renew else 'off'}."
                ),
                url=reverse("domains:detail", args=[domain.pk]),
                action="Renew",
                tone="danger" if days <= 7 else "warn",
            )
        )
    if len(rows) > ATTENTION_LIMIT:
        items.append(
            AttentionItem(
                title="More domains expiring soon",
                url=reverse("domains:list") + "?status=active",
                action="View domains",
                tone="info",
            )
        )
    return items
