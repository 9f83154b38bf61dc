"""Renew a domain: a renewal invoice at staff's price, paid through the usual flow, then
the registry's renewal, exactly once, never inside a transaction.

1. ``domain_renewal_order`` (the customer: View & Pay Invoices and Manage Domain Settings
   on the domain) records the order and issues its invoice through ``core.billable``
   (domains does not import billing): one line "domains.renewal:<order id>".
2. However the invoice gets paid (card, a card payment the worker settles, credit, a bank
   transfer staff confirm), billing calls ``_renewal_paid`` inside the transaction that
   records the payment: the order becomes "paid", committed with the payment.
3. After the commit (``transaction.on_commit``), or by the worker's
   ``domain_renewals_due`` if that never ran, ``renewal_carry_out`` claims the paid order
   (paid → renewing, under its row lock), records the intent as a PendingChange and asks
   the registry to renew from the current expiry (a retry never renews twice). A refusal
   leaves the order "failed", shown on the domain page and in the back office, where
   staff retry it; no answer leaves the change pending for the reconciler.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from clientarea.accounts.models import Account, User
from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import OutOfReach, may
from clientarea.audit.services import audit_record, client_ip
from clientarea.core import billable
from clientarea.core.models import PendingChange
from clientarea.core.outside import (
    OutsideChangeInFlight,
    assert_no_transaction,
    pending_change_begin,
)

from .drivers import add_years, registrar_driver
from .models import Domain, DomainPrice, DomainRenewal
from .services import (
    RENEW,
    DomainActionError,
    _call_registry,
    _locked_domain,
    _record,
    _target,
)

ITEM_KIND = "domains.renewal"
RENEWABLE = (Domain.Status.ACTIVE, Domain.Status.EXPIRED)
MAX_YEARS_AHEAD = 10  # registries refuse an expiry more than ten years away

logger = logging.getLogger(__name__)


def _suffixes(name: str) -> list[str]:
    labels = name.lower().split(".")
    return [".".join(labels[i:]) for i in range(1, len(labels))]


def renewal_prices(domain: Domain, currency: str) -> list[DomainPrice]:
    """The periods staff priced for the domain's TLD (its longest priced suffix, so
    "co.uk" before "uk") in `currency`, shortest first."""
    prices = list(DomainPrice.objects.filter(tld__in=_suffixes(domain.name), currency=currency))
    if not prices:
        return []
    tld = max((p.tld for p in prices), key=len)
    return sorted((p for p in prices if p.tld == tld), key=lambda p: p.years)


def renewal_periods(domain: Domain, currency: str) -> list[DomainPrice]:
    """The priced periods the domain can be renewed for now (not past ten years ahead)."""
    if domain.status not in RENEWABLE or domain.expiry_date is None:
        return []
    limit = add_years(timezone.localdate(), MAX_YEARS_AHEAD)
    return [
        p
        for p in renewal_prices(domain, currency)
        if add_years(domain.expiry_date, p.years) <= limit
    ]


def renewal_open(domain: Domain) -> DomainRenewal | None:
    """The domain's renewal under way (paid and not yet renewed, or failed and waiting
    for staff), or its newest unpaid one whose invoice is still open."""
    for order in DomainRenewal.objects.filter(domain=domain).exclude(
        state=DomainRenewal.State.DONE
    )[:5]:
        if order.state != DomainRenewal.State.AWAITING_PAYMENT:
            return order
        if order.invoice_id is not None and billable.biller().is_open(order.invoice_id):
            return order
    return None


def renewal_shown(domain: Domain) -> DomainRenewal | None:
    """The renewal the domain page tells about: one under way or failed, one whose
    invoice waits to be paid, or one completed in the last week."""
    order = renewal_open(domain)
    if order is not None:
        return order
    return DomainRenewal.objects.filter(
        domain=domain,
        state=DomainRenewal.State.DONE,
        finished_at__gte=timezone.now() - timedelta(days=7),
    ).first()


def may_renew(user: User, account: Account, domain: Domain) -> bool:
    """Renewing is paying for the domain: View & Pay Invoices on the account and Manage
    Domain Settings on this domain (in the person's scope)."""
    return may(user, Perm.INVOICES.value, account) and may(
        user, Perm.MANAGE_DOMAINS.value, account, obj=domain
    )


def domain_renewal_order(
    *, domain: Domain, actor: User, years: int, request: HttpRequest | None = None
) -> DomainRenewal:
    """Order a renewal for `years` at the price list's price and issue its invoice. The
    same order made again while its invoice is open returns that order (one invoice)."""
    with transaction.atomic():
        row = _locked_domain(domain.pk)
        if not may_renew(actor, row.account, row):
            raise OutOfReach("No such domain.")
        existing = renewal_open(row)
        if existing is not None:
            if existing.state == DomainRenewal.State.AWAITING_PAYMENT and existing.years == years:
                return existing  # the same form sent again
            if existing.state == DomainRenewal.State.AWAITING_PAYMENT:
                raise DomainActionError(
                    f"Invoice #{existing.invoice_number} for renewing {row.unicode_name} is "
                    "waiting to be paid: pay it first."
                )
            raise DomainActionError(
                f"A paid renewal of {row.unicode_name} is under way: "
                f"{existing.get_state_display().lower()}."
            )
        if row.status not in RENEWABLE:
            raise DomainActionError(
                f"{row.unicode_name} is {row.get_status_display().lower()}: it cannot be renewed."
            )
        price = next(
            (p for p in renewal_periods(row, row.account.currency) if p.years == years), None
        )
        if price is None:
            raise DomainActionError(
                f"{row.unicode_name} cannot be renewed for {years} year(s) here: choose one "
                "of the periods offered."
            )
        order = DomainRenewal.objects.create(
            account=row.account,
            domain=row,
            years=years,
            price=price.renew_price,
            currency=price.currency,
            ordered_by=actor,
        )
        label = "year" if years == 1 else "years"
        invoice_id, number = billable.biller().issue(
            account=row.account,
            lines=[
                billable.BillableLine(
                    description=f"Domain renewal: {row.unicode_name}, {years} {label}"[:300],
                    unit_price=Decimal(price.renew_price),
                    item=f"{ITEM_KIND}:{order.pk}",
                )
            ],
            actor=actor,
            request=request,
        )
        order.invoice_id, order.invoice_number = invoice_id, number
        order.save(update_fields=["invoice_id", "invoice_number"])
        audit_record(
            action="domain.renewal_ordered",
            actor=actor,
            account=row.account,
            target=row,
            changes={"years": years, "price": str(price.renew_price), "invoice": number},
            request=request,
        )
    return order


def _renewal_paid(paid: billable.PaidItem) -> None:
    """Billing: the renewal's invoice is paid (we are inside that transaction)."""
    order_id = int(paid.item.split(":", 1)[1])
    updated = DomainRenewal.objects.filter(
        pk=order_id,
        invoice_id=paid.invoice_id,
        state=DomainRenewal.State.AWAITING_PAYMENT,
    ).update(state=DomainRenewal.State.PAID, paid_at=timezone.now())
    if updated:
        transaction.on_commit(lambda: _carry_out_quietly(order_id), robust=True)


def _carry_out_quietly(order_id: int) -> None:
    # After the payment's commit: a registry problem never turns the payment page into
    # an error; the order keeps its state and the worker or staff take it from there.
    try:
        renewal_carry_out(order_id)
    except Exception:
        logger.exception("Renewing for order %s failed", order_id)


def _fail(order: DomainRenewal, message: str) -> None:
    order.state = DomainRenewal.State.FAILED
    order.message = message[:300]
    order.finished_at = timezone.now()
    order.save(update_fields=["state", "message", "finished_at"])


def renewal_carry_out(order_id: int) -> str:
    """Renew a paid order at the registry, exactly once. Returns "done", "pending" (no
    answer: the reconciler settles it), "failed", "waiting" (another registry change of
    the domain is in flight: tried again later) or "skipped" (not a paid order)."""
    assert_no_transaction()
    with transaction.atomic():
        order = DomainRenewal.objects.select_for_update().filter(pk=order_id).first()
        if order is None or order.state != DomainRenewal.State.PAID:
            return "skipped"
        row = _locked_domain(order.domain_id)
        if row.status not in RENEWABLE or row.expiry_date is None:
            _fail(order, f"{row.unicode_name} is {row.get_status_display().lower()}.")
            return "failed"
        current = row.expiry_date
        params: dict[str, object] = {
            "years": order.years,
            "before": current.isoformat(),
            "after": add_years(current, order.years).isoformat(),
            "renewal": order.pk,
            "invoice": order.invoice_number,
            "ip_address": "",
        }
        try:
            change = pending_change_begin(
                operation=RENEW,
                target=_target(row),
                account=row.account,
                actor=order.ordered_by,
                params=params,
            )
        except OutsideChangeInFlight:
            return "waiting"
        order.state = DomainRenewal.State.RENEWING
        order.change = change
        order.save(update_fields=["state", "change"])
    years = order.years
    try:
        pending = _call_registry(change, lambda: registrar_driver().renew(row, years, current))
    except DomainActionError as exc:  # refused or unreachable: the change is recorded failed
        with transaction.atomic():
            _close(order.pk, done=False, message=str(exc))
        return "failed"
    if pending is not None:
        return "pending"  # no answer: the reconciler settles the change, the job the order
    _record(change)
    with transaction.atomic():
        _close(order.pk, done=True)
    return "done"


def _close(order_id: int, *, done: bool, message: str = "") -> None:
    """The order's registry change ended: so does the order, once, with its audit."""
    order = (
        DomainRenewal.objects.select_for_update(of=("self",))
        .select_related("domain", "account")
        .filter(pk=order_id, state=DomainRenewal.State.RENEWING)
        .first()
    )
    if order is None:
        return
    if done:
        order.state, order.message = DomainRenewal.State.DONE, ""
    else:
        _fail(order, message or "The registry did not renew the domain.")
        # For the operators' log alerts; staff find it under Domain renewals, "failed".
        logger.error(
            "Paid renewal %s of domain %s failed at the registry: %s",
            order.pk,
            order.domain_id,
            order.message,
        )
    order.finished_at = timezone.now()
    order.save(update_fields=["state", "message", "finished_at"])
    audit_record(
        action="domain.renewal_completed" if done else "domain.renewal_failed",
        actor=order.ordered_by,
        account=order.account,
        target=order.domain,
        changes={"years": order.years, "invoice": order.invoice_number, "reason": order.message},
    )


def domain_renewals_due() -> str:
    """The worker: carry out paid orders whose after-commit run never happened (a crash)
    or had to wait, and close orders whose registry change was given up on."""
    grace = timedelta(seconds=settings.PENDING_CHANGE_GRACE_SECONDS)
    counts: dict[str, int] = {}
    due = DomainRenewal.objects.filter(
        state=DomainRenewal.State.PAID, paid_at__lte=timezone.now() - grace
    ).values_list("pk", flat=True)[:50]
    for pk in list(due):
        try:
            result = renewal_carry_out(pk)
        except Exception:
            logger.exception("Renewing for order %s failed", pk)
            result = "error"
        counts[result] = counts.get(result, 0) + 1
    for order in DomainRenewal.objects.filter(
        state=DomainRenewal.State.RENEWING,
        change__state__in=[PendingChange.State.DONE, PendingChange.State.FAILED],
    ).select_related("change")[:50]:
        assert order.change is not None
        with transaction.atomic():
            _close(
                order.pk,
                done=order.change.state == PendingChange.State.DONE,
                message=order.change.message,
            )
        counts["closed"] = counts.get("closed", 0) + 1
    if not counts:
        return ""
    return "domain renewals: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def renewal_retry(*, order_id: int, staff: User, request: HttpRequest | None = None) -> str:
    """Staff: try a failed (paid) renewal again."""
    with transaction.atomic():
        order = DomainRenewal.objects.select_for_update().filter(pk=order_id).first()
        if order is None or order.state != DomainRenewal.State.FAILED:
            raise DomainActionError("Only a failed renewal can be tried again.")
        order.state = DomainRenewal.State.PAID
        order.message = ""
        order.finished_at = None
        order.save(update_fields=["state", "message", "finished_at"])
        audit_record(
            action="domain.renewal_retried",
            actor=staff,
            account=order.account,
            target=order.domain,
            changes={"renewal": order.pk},
            ip_address=client_ip(request) if request else None,
            is_staff_action=True,
        )
    return renewal_carry_out(order_id)


def register() -> None:
    from clientarea.core.registry import register_periodic_job

    billable.register_paid_handler(ITEM_KIND, _renewal_paid)
    register_periodic_job("domains.renewals", domain_renewals_due)
