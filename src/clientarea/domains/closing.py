"""Domains' part in closing an account: each live domain stays registered until it
expires, with auto-renew turned off once staff confirm the closing."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from clientarea.accounts.closing import ClosureItem
from clientarea.accounts.models import Account

from .models import Domain
from .selectors import LIVE_STATUSES

logger = logging.getLogger(__name__)


def domains_on_closing(account: Account) -> list[ClosureItem]:
    items = []
    for domain in Domain.objects.filter(account=account, status__in=LIVE_STATUSES).order_by(
        "name", "pk"
    )[:200]:
        until = (
            f"until it expires on {domain.expiry_date}"
            if domain.expiry_date
            else "until it expires"
        )
        items.append(
            ClosureItem(
                section="Domains",
                label=domain.unicode_name,
                outcome=f"stays registered {until}; auto-renew is turned off",
            )
        )
    return items


def auto_renew_off_on_close(*, account: Account, staff: Any, **kwargs: Any) -> None:
    """After the closing commits (the registrar is never called inside a transaction or
    a lock held by it), turn auto-renew off for each manageable domain."""
    ids = list(
        Domain.objects.filter(
            account=account, status__in=Domain.MANAGEABLE_STATUSES, auto_renew=True
        ).values_list("pk", flat=True)
    )
    if not ids:
        return

    def run() -> None:
        from .services import domain_set_auto_renew

        for domain in Domain.objects.filter(pk__in=ids):
            try:
                domain_set_auto_renew(domain=domain, actor=staff, enabled=False)
            except Exception:  # one registrar failure must not stop the others
                logger.exception("auto-renew could not be turned off for domain %s", domain.pk)

    transaction.on_commit(run)
