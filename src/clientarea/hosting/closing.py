"""Hosting's part in closing an account: each service runs to the end of its current
period, then the worker cancels it (a pending service, never started, at once)."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clientarea.accounts.closing import ClosureItem
from clientarea.accounts.models import Account
from clientarea.audit.services import audit_record

from .models import Service

OPEN_STATUSES = (Service.Status.PENDING, Service.Status.ACTIVE, Service.Status.SUSPENDED)


def services_on_closing(account: Account) -> list[ClosureItem]:
    items = []
    for service in Service.objects.filter(account=account, status__in=OPEN_STATUSES).order_by(
        "product_name", "pk"
    )[:200]:
        if service.status == Service.Status.PENDING or service.next_due_date is None:
            outcome = "cancelled when the account closes"
        else:
            outcome = f"cancelled at the end of its period ({service.next_due_date})"
        items.append(ClosureItem(section="Services", label=str(service), outcome=outcome))
    return items


def services_of_closed_accounts_cancel_due() -> int:
    """The worker's sweep: cancel the services of closed accounts whose period is over."""
    today = timezone.localdate()
    due = Service.objects.filter(account__closed_at__isnull=False, status__in=OPEN_STATUSES).filter(
        Q(status=Service.Status.PENDING)
        | Q(next_due_date__isnull=True)
        | Q(next_due_date__lte=today)
    )
    count = 0
    for pk in list(due.values_list("pk", flat=True)[:500]):
        with transaction.atomic():
            service = (
                Service.objects.select_for_update(of=("self",))
                .select_related("account")
                .filter(pk=pk, status__in=OPEN_STATUSES)
                .first()
            )
            if service is None:
                continue
            before = service.status
            service.status = Service.Status.CANCELLED
            service.save(update_fields=["status"])
            audit_record(
                action="service.cancelled",
                account=service.account,
                target=service,
                changes={"status": [before, service.status], "reason": "account closed"},
            )
            count += 1
    return count
