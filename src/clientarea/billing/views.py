from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import urlencode
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import AccountRequest, account_object_or_404, owner_only, requires
from clientarea.accounts.reauth import recent_auth_required

from . import gateways, purchases, selectors, services
from .forms import (
    BANK_TRANSFER,
    CREDIT,
    NEW_CARD,
    AddFundsForm,
    CardForm,
    PayForm,
    PaySeveralForm,
)
from .models import Invoice, PaymentMethod, Transaction
from .pdf import invoice_pdf as draw_invoice_pdf

PAGE_SIZE = 20
CARD_FIELDS = ("card_number", "cvc")


@requires(Perm.INVOICES)
@require_GET
def invoice_list(request: AccountRequest) -> HttpResponse:
    account = request.access.account
    status = request.GET.get("status", "")
    if status not in selectors.STATUS_FILTERS:
        status = ""
    invoices = selectors.invoice_list_for(account=account, status=status or None)
    page = Paginator(invoices, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "billing/invoice_list.html",
        {
            "page_obj": page,
            "invoices": page.object_list,
            "status": status,
            "statuses": Invoice.DISPLAY_STATUSES,
            "query": urlencode({"status": status}) if status else "",
            "unpaid_total": selectors.invoice_unpaid_total(account=account),
            # Pay several at once: the unpaid invoices shown that may be combined.
            "combinable": {i.pk for i in page.object_list if i.is_payable},
            "credit_balance": account.credit_balance,
            "currency": account.currency,
        },
    )


def _invoice(request: AccountRequest, pk: int) -> Invoice:
    return account_object_or_404(
        Invoice.objects.select_related("account"), request.access.account, pk=pk
    )


@requires(Perm.INVOICES)
@require_GET
def invoice_detail(request: AccountRequest, pk: int) -> HttpResponse:
    invoice = _invoice(request, pk)
    transactions = list(selectors.transactions_for_invoice(invoice=invoice))
    return render(
        request,
        "billing/invoice_detail.html",
        {
            "invoice": invoice,
            "lines": list(invoice.lines.all()),
            "transactions": transactions,
            "processing": next(
                (t for t in transactions if t.status == Transaction.Status.PROCESSING), None
            ),
            "site_address": settings.SITE_ADDRESS,
        },
    )


@requires(Perm.INVOICES)
@require_GET
def invoice_pdf(request: AccountRequest, pk: int) -> HttpResponse:
    invoice = _invoice(request, pk)
    payments = selectors.transactions_for_invoice(invoice=invoice).filter(
        status=Transaction.Status.SUCCEEDED
    )
    content = draw_invoice_pdf(invoice, list(invoice.lines.all()), list(payments))
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="invoice-{invoice.number}.pdf"'
    return response


def _pay_form(
    request: AccountRequest, data: Any = None, *, no_credit: bool = False, **extra: Any
) -> PayForm:
    access = request.access
    return PayForm(
        data,
        payment_methods=list(selectors.payment_methods_for(account=access.account)),
        # Add Funds is not paid from the credit balance it adds to.
        credit_balance=services.ZERO if no_credit else access.account.credit_balance,
        currency=access.account.currency,
        is_owner=access.is_owner,
        takes_new_cards=gateways.card_gateway() is not None,
        **extra,
    )


def _source(form: PayForm) -> services.PaySource:
    method = form.cleaned_data["method"]
    if method == CREDIT:
        return services.PayWithCredit()
    if method == BANK_TRANSFER:
        return services.PayByBankTransfer()
    if method == NEW_CARD:
        assert form.card is not None
        return services.PayWithNewCard(
            card=form.card, save=bool(form.cleaned_data.get("save_card"))
        )
    stored = form.stored_method_id
    assert stored is not None
    return services.PayWithStoredMethod(payment_method_id=stored)


@requires(Perm.INVOICES)
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters(*CARD_FIELDS)
def invoice_pay(request: AccountRequest, pk: int) -> HttpResponse:
    invoice = _invoice(request, pk)
    if not invoice.is_payable:
        messages.info(request, f"Invoice #{invoice.number} has nothing to pay.")
        return redirect("billing:invoice_detail", pk=invoice.pk)
    processing = selectors.processing_payment_for(invoice=invoice)
    if processing is not None:
        # A card payment awaits the processor's answer: explain, offer nothing to pay.
        return _pay_page(request, invoice, None, processing)
    no_credit = services.adds_funds(invoice)
    form = _pay_form(
        request, request.POST if request.method == "POST" else None, no_credit=no_credit
    )
    if request.method == "POST" and form.is_valid():
        chosen = form.cleaned_data["method"]
        try:
            outcome = services.invoice_pay(
                invoice_id=invoice.pk,
                account=request.access.account,
                payer=request.user,
                source=_source(form),
                idempotency_key=form.cleaned_data["idempotency_key"],
                request=request,
            )
        except services.BillingError as exc:
            invoice.refresh_from_db()
            if not invoice.is_payable:
                messages.info(request, str(exc))
                return redirect("billing:invoice_detail", pk=invoice.pk)
            processing = selectors.processing_payment_for(invoice=invoice)
            if processing is not None:  # someone else's payment is at the processor
                messages.info(request, str(exc))
                return _pay_page(request, invoice, None, processing)
            messages.error(request, str(exc))
            form = _pay_form(request, no_credit=no_credit, initial={"method": chosen})
        else:
            if outcome.status == "processing":
                messages.info(request, outcome.message)
                return redirect("billing:invoice_detail", pk=invoice.pk)
            if outcome.status in ("declined", "failed"):
                # Nothing was charged: a fresh form (and key) to try again.
                messages.error(request, outcome.message)
                form = _pay_form(request, no_credit=no_credit, initial={"method": chosen})
            else:
                messages.success(request, outcome.message)
                return redirect("billing:invoice_detail", pk=invoice.pk)
    return _pay_page(request, invoice, form, None)


def _pay_page(
    request: AccountRequest,
    invoice: Invoice,
    form: PayForm | None,
    processing: Transaction | None,
) -> HttpResponse:
    return render(
        request,
        "billing/invoice_pay.html",
        {
            "invoice": invoice,
            "form": form,
            "processing": processing,
            "processing_message": services.PROCESSING_MESSAGE,
            "credit_balance": request.access.account.credit_balance,
            "bank_details": settings.BILLING_BANK_DETAILS,
            "takes_new_cards": gateways.card_gateway() is not None,
            "sandbox": gateways.is_sandbox(),
        },
    )


@requires(Perm.INVOICES)
@require_GET
def payment_methods(request: AccountRequest) -> HttpResponse:
    account = request.access.account
    return render(
        request,
        "billing/payment_methods.html",
        {
            "methods": list(selectors.payment_methods_for(account=account)),
            "credit_balance": account.credit_balance,
            "currency": account.currency,
            "takes_new_cards": gateways.card_gateway() is not None,
        },
    )


@owner_only
@require_http_methods(["GET", "POST"])
@recent_auth_required
@sensitive_post_parameters(*CARD_FIELDS)
def payment_method_add(request: AccountRequest) -> HttpResponse:
    if gateways.card_gateway() is None:
        messages.info(request, "This installation takes no card payments, so no card is stored.")
        return redirect("billing:payment_methods")
    form = CardForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid() and form.card is not None:
        try:
            method = services.payment_method_add(
                account=request.access.account, actor=request.user, card=form.card, request=request
            )
        except services.BillingError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"The {method.label} was saved.")
            return redirect("billing:payment_methods")
    return render(
        request,
        "billing/payment_method_add.html",
        {"form": form, "sandbox": gateways.is_sandbox()},
    )


@owner_only
@require_POST
def payment_method_remove(request: AccountRequest, pk: int) -> HttpResponse:
    account = request.access.account
    method = account_object_or_404(PaymentMethod.objects.all(), account, pk=pk)
    try:
        services.payment_method_remove(
            account=account, actor=request.user, payment_method_id=method.pk, request=request
        )
    except services.BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "The card was removed.")
    return redirect("billing:payment_methods")


@requires(Perm.INVOICES)
@require_POST
def pay_several(request: AccountRequest) -> HttpResponse:
    """Pay the chosen unpaid invoices in one payment: a combined invoice, paid as usual."""
    account = request.access.account
    ids = list(
        Invoice.objects.filter(account=account, status=Invoice.Status.UNPAID).values_list(
            "pk", flat=True
        )
    )
    form = PaySeveralForm(request.POST, invoice_ids=ids)
    if not form.is_valid():
        messages.error(
            request,
            " ".join(str(e) for e in form.errors.get("invoices", []))
            or "Choose the invoices to pay together.",
        )
        return redirect("billing:invoice_list")
    try:
        combined = purchases.combined_invoice_create(
            account=account,
            actor=request.user,
            invoice_ids=form.cleaned_data["invoices"],
            request=request,
        )
    except services.BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing:invoice_list")
    messages.info(
        request,
        f"Invoice #{combined.number} pays the {len(form.cleaned_data['invoices'])} chosen "
        "invoices in one payment.",
    )
    return redirect("billing:invoice_pay", pk=combined.pk)


@requires(Perm.INVOICES)
@require_http_methods(["GET", "POST"])
def add_funds(request: AccountRequest) -> HttpResponse:
    """Add Funds: an invoice for the amount, paid as usual, credited once paid."""
    account = request.access.account
    low, high, most = purchases.add_funds_limits()
    form = AddFundsForm(request.POST if request.method == "POST" else None, low=low, high=high)
    if request.method == "POST" and form.is_valid():
        try:
            invoice = purchases.funds_invoice_create(
                account=account,
                actor=request.user,
                amount=form.cleaned_data["amount"],
                request=request,
            )
        except services.BillingError as exc:
            form.add_error("amount", str(exc))
        else:
            return redirect("billing:invoice_pay", pk=invoice.pk)
    return render(
        request,
        "billing/add_funds.html",
        {
            "form": form,
            "low": low,
            "high": high,
            "most": most,
            "credit_balance": account.credit_balance,
            "currency": account.currency,
        },
    )
