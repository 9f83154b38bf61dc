from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import (
    AccountRequest,
    OutOfReach,
    requires,
    scoped_object_or_404,
)
from clientarea.core.outside import unconfirmed

from . import renewals, services
from .forms import NameserverForm, RenewForm, StatusFilterForm, ToggleForm
from .models import Domain, DomainPrice
from .scope import KIND
from .selectors import domain_list_for

PAGE_SIZE = 25


def _domain(request: AccountRequest, pk: int) -> Domain:
    # Another account's domain and one outside the access's scope: the same 404.
    return scoped_object_or_404(
        Domain.objects.select_related("account"), request.access, KIND, pk=pk
    )


@requires(Perm.DOMAINS)
@require_GET
def domain_list(request: AccountRequest) -> HttpResponse:
    filters = StatusFilterForm(request.GET)
    status = filters.cleaned_data["status"] if filters.is_valid() else ""
    page = Paginator(domain_list_for(access=request.access, status=status), PAGE_SIZE)
    page_obj = page.get_page(request.GET.get("page"))
    return render(
        request,
        "domains/domain_list.html",
        {
            "page_obj": page_obj,
            "domains": page_obj.object_list,
            "filters": filters,
            "query": f"status={status}" if status else "",
        },
    )


@requires(Perm.DOMAINS)
@require_GET
def domain_detail(request: AccountRequest, pk: int) -> HttpResponse:
    domain = _domain(request, pk)
    pending = services.domain_pending_change(domain)
    failed = None if pending else services.domain_last_failed_change(domain)
    return render(
        request,
        "domains/domain_detail.html",
        {
            "domain": domain,
            "can_manage": request.access.has(Perm.MANAGE_DOMAINS),
            # The registry's own view (domain:info), asked at most once a minute.
            "registry": services.domain_registry_view(domain),
            "pending_change": pending,
            "pending_label": services.change_label(pending),
            "failed_change": failed,
            "failed_label": services.change_label(failed),
            "failed_unconfirmed": unconfirmed(failed),
            "can_renew": renewals.may_renew(request.user, request.access.account, domain),
            "renewal": renewals.renewal_shown(domain),
        },
    )


@requires(Perm.MANAGE_DOMAINS)
@require_http_methods(["GET", "POST"])
def domain_nameservers(request: AccountRequest, pk: int) -> HttpResponse:
    domain = _domain(request, pk)
    if not domain.is_manageable:
        messages.error(
            request,
            f"{domain.unicode_name} is {domain.get_status_display().lower()}: "
            "its settings cannot be changed.",
        )
        return redirect("domains:detail", pk=domain.pk)
    form = NameserverForm(request.POST or None, initial_nameservers=domain.nameserver_list)
    if request.method == "POST" and form.is_valid():
        try:
            outcome = services.domain_set_nameservers(
                domain=domain,
                access=request.access,
                nameservers=form.cleaned_data["nameservers"],
                request=request,
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        except services.DomainActionError as exc:
            form.add_error(None, str(exc))
        else:
            if outcome.pending:
                messages.warning(request, _pending_message(domain, "new nameservers"))
            else:
                messages.success(request, f"The nameservers of {domain.unicode_name} were saved.")
            return redirect("domains:detail", pk=domain.pk)
    return render(request, "domains/domain_nameservers.html", {"domain": domain, "form": form})


ToggleService = Callable[..., object]


def _pending_message(domain: Domain, what: str) -> str:
    return (
        f"The registry has not confirmed the {what} of {domain.unicode_name} yet: the change "
        "is pending, and this page will show when it is made."
    )


def _toggle(
    request: AccountRequest, pk: int, *, action: ToggleService, keyword: str, label: str
) -> HttpResponse:
    domain = _domain(request, pk)
    form = ToggleForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Choose whether {label} should be on or off.")
        return redirect("domains:detail", pk=domain.pk)
    enabled: bool = form.cleaned_data["enabled"]
    try:
        outcome = action(
            domain=domain, access=request.access, request=request, **{keyword: enabled}
        )
    except services.DomainActionError as exc:
        messages.error(request, str(exc))
    else:
        if isinstance(outcome, services.ChangeOutcome) and outcome.pending:
            messages.warning(request, _pending_message(domain, label))
            return redirect("domains:detail", pk=domain.pk)
        state = "on" if enabled else "off"
        messages.success(request, f"{label.capitalize()} is {state} for {domain.unicode_name}.")
    return redirect("domains:detail", pk=domain.pk)


@requires(Perm.MANAGE_DOMAINS)
@require_http_methods(["GET", "POST"])
def domain_registrar_lock(request: AccountRequest, pk: int) -> HttpResponse:
    """Unlocking lets the domain be transferred away: GET asks for confirmation (as Revoke
    Access does), POST acts. Locking again is offered at once from the domain's page."""
    if request.method == "GET":
        domain = _domain(request, pk)
        if not domain.registrar_lock or not domain.is_manageable:
            return redirect("domains:detail", pk=domain.pk)
        return render(request, "domains/registrar_unlock.html", {"domain": domain})
    return _toggle(
        request,
        pk,
        action=services.domain_set_registrar_lock,
        keyword="locked",
        label="registrar lock",
    )


@requires(Perm.MANAGE_DOMAINS)
@require_POST
def domain_auto_renew(request: AccountRequest, pk: int) -> HttpResponse:
    return _toggle(
        request, pk, action=services.domain_set_auto_renew, keyword="enabled", label="auto-renew"
    )


def _period_label(price: DomainPrice) -> str:
    unit = "year" if price.years == 1 else "years"
    return f"{price.years} {unit}: {price.renew_price} {price.currency}"


@requires(Perm.MANAGE_DOMAINS)
@require_http_methods(["GET", "POST"])
def domain_renew(request: AccountRequest, pk: int) -> HttpResponse:
    """Renew: choose a priced period; a renewal invoice is issued and paid as usual.
    Renewing is paying for the domain, so it also needs View & Pay Invoices."""
    domain = _domain(request, pk)
    if not request.access.has(Perm.INVOICES):
        raise OutOfReach("No such domain.")
    open_order = renewals.renewal_open(domain)
    periods = renewals.renewal_periods(domain, request.access.account.currency)
    form = RenewForm(
        request.POST if request.method == "POST" else None,
        periods=[(p.years, _period_label(p)) for p in periods],
    )
    if request.method == "POST" and form.is_valid():
        try:
            order = renewals.domain_renewal_order(
                domain=domain,
                actor=request.user,
                years=form.cleaned_data["years"],
                request=request,
            )
        except services.DomainActionError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                f"Invoice #{order.invoice_number} was issued for renewing {domain.unicode_name}: "
                "once it is paid, the domain is renewed at the registry.",
            )
            # The usual payment page (a URL name: domains imports nothing of billing).
            return redirect("billing:invoice_pay", pk=order.invoice_id)
    return render(
        request,
        "domains/domain_renew.html",
        {
            "domain": domain,
            "form": form,
            "periods": periods,
            "open_order": open_order,
            "renewable": domain.status in renewals.RENEWABLE and domain.expiry_date is not None,
        },
    )
