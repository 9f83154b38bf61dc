"""Domains' part in closing an account: each live domain stays registered until it
expires, with auto-renew turned off once staff confirm the closing."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from clientarea.accounts.closing import ClosureItem
from clientarea.accounts.models import Account
from clientarea.audit.services import audit_record

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
    """After the closing commits, turn auto-renew off for each manageable domain: the
    registrar first (never inside a transaction), then the row and its audit event. The
    account is closed, so this is the back office acting, not a customer's grant."""
    ids = list(
        Domain.objects.filter(
            account=account, status__in=Domain.MANAGEABLE_STATUSES, auto_renew=True
        ).values_list("pk", flat=True)
    )
    if ids:
        transaction.on_commit(lambda: _auto_renew_off(ids, staff))


def auto_renew_of_closed_accounts_off_due() -> int:
    """The worker's sweep: a registrar that failed when the closing committed (or a crash
    in between) leaves auto-renew on; try again until it is off. Returns how many."""
    ids = list(
        Domain.objects.filter(
            account__closed_at__isnull=False,
            status__in=Domain.MANAGEABLE_STATUSES,
            auto_renew=True,
        ).values_list("pk", flat=True)[:200]
    )
    return _auto_renew_off(ids, None)


def _auto_renew_off(ids: list[int], staff: Any) -> int:
    count = 0
    # Auto-renew is our billing setting (no registry command): nothing outside to call.
    for domain in Domain.objects.filter(pk__in=ids, auto_renew=True).select_related("account"):
        with transaction.atomic():
            updated = Domain.objects.filter(pk=domain.pk, auto_renew=True).update(auto_renew=False)
            if updated:
                audit_record(
                    action="domain.auto_renew_changed",
                    actor=staff,
                    account=domain.account,
                    target=domain,
                    changes={"auto_renew": [True, False], "reason": "account closed"},
                    is_staff_action=staff is not None,
                )
                count += 1
    return count
