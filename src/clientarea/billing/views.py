from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clientarea.accounts.permissions import Perm
from clientarea.accounts.policy import AccountRequest, account_object_or_404, owner_only, requires
from clientarea.accounts.reauth import recent_auth_required

from . import gateways, purchases, selectors, services
from .card_entry import card_entry_context, card_entry_csp
from .forms import (
    BANK_TRANSFER,
    CREDIT,
    NEW_CARD,
    AddFundsForm,
    CardForm,
    PayForm,
    PaySeveralForm,
    SandboxCardForm,
)
from .models import Invoice, PaymentMethod, Transaction
from .pdf import invoice_pdf as draw_invoice_pdf

PAGE_SIZE = 20


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
            # A card payment in flight (a card refund in flight is listed as processing).
            "processing": next(
                (
                    t
                    for t in transactions
                    if t.kind == Transaction.Kind.PAYMENT
                    and t.status == Transaction.Status.PROCESSING
                ),
                None,
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
    request: AccountRequest,
    invoice: Invoice,
    data: Any = None,
    *,
    no_credit: bool = False,
    **extra: Any,
) -> PayForm:
    access = request.access
    return PayForm(
        data,
        payment_methods=list(selectors.payment_methods_for(account=access.account)),
        # Add Funds is not paid from the credit balance it adds to.
        credit_balance=services.ZERO if no_credit else access.account.credit_balance,
        balance=invoice.balance,
        currency=access.account.currency,
        is_owner=access.is_owner,
        takes_new_cards=bool(
            card_entry_context(invoice.balance, invoice.currency, "payment")["gateway"]
        ),
        credit_pays_part=not services.is_combined(invoice),
        **extra,
    )


def _source(form: PayForm) -> services.PaySource:
    method = form.cleaned_data["method"]
    if method == CREDIT:
        return services.PayWithCredit()
    if method == BANK_TRANSFER:
        return services.PayByBankTransfer()
    if method == NEW_CARD:
        return services.PayWithNewCard(
            token=form.cleaned_data["card_token"], save=bool(form.cleaned_data.get("save_card"))
        )
    stored = form.stored_method_id
    assert stored is not None
    return services.PayWithStoredMethod(payment_method_id=stored)


# The card a payment should keep once the card holder's bank confirmed it (3-D Secure):
# what may be shown of it, kept in the payer's own session until the return.
SESSION_CARD_TO_SAVE = "billing_card_to_save"
# The card save (the processor's id of it) waiting at the card holder's bank.
SESSION_CARD_SAVE = "billing_card_save"


def _remember_card_to_save(request: AccountRequest, tx: Transaction, card_token: str) -> None:
    cards = request.session.get(SESSION_CARD_TO_SAVE, {})
    cards = dict(list(cards.items())[-4:])  # a few at most
    cards[str(tx.pk)] = card_token
    request.session[SESSION_CARD_TO_SAVE] = cards


def _card_to_save(request: AccountRequest, tx_id: int | None) -> str:
    cards = request.session.get(SESSION_CARD_TO_SAVE, {})
    token = cards.pop(str(tx_id), "") if tx_id is not None else ""
    if token:
        request.session[SESSION_CARD_TO_SAVE] = cards
    return str(token)


def _to_bank(request: AccountRequest, bank_url: str, back_url: str) -> HttpResponse | None:
    """Send the browser to the card holder's bank (3-D Secure); None when the processor
    gave no usable address. A page with a link, not a redirect: a redirect answering a
    form post would be refused by the browser under the site's form-action policy; the
    page's script follows the link at once."""
    if urlsplit(bank_url).scheme not in ("https", "http"):
        return None
    return render(request, "billing/to_bank.html", {"bank_url": bank_url, "back_url": back_url})


BANK_PAGE_UNUSABLE = (
    "Your bank's confirmation page could not be opened, and nothing has been charged: "
    "cancel this payment below and choose how to pay again."
)


@requires(Perm.INVOICES)
@require_http_methods(["GET", "POST"])
@sensitive_post_parameters("card_token")
@card_entry_csp
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
        request, invoice, request.POST if request.method == "POST" else None, no_credit=no_credit
    )
    if request.method == "POST" and form.is_valid():
        chosen = form.cleaned_data["method"]
        source = _source(form)
        try:
            outcome = services.invoice_pay(
                invoice_id=invoice.pk,
                access=request.access,
                source=source,
                idempotency_key=form.cleaned_data["idempotency_key"],
                apply_credit_first=bool(form.cleaned_data.get("apply_credit")),
                return_url=request.build_absolute_uri(
                    reverse("billing:invoice_pay_return", args=[invoice.pk])
                ),
                request=request,
            )
        except services.BillingError as exc:
            invoice.refresh_from_db()
            request.access.account.refresh_from_db(fields=["credit_balance"])
            if not invoice.is_payable:
                messages.info(request, str(exc))
                return redirect("billing:invoice_detail", pk=invoice.pk)
            processing = selectors.processing_payment_for(invoice=invoice)
            if processing is not None:  # someone else's payment is at the processor
                messages.info(request, str(exc))
                return _pay_page(request, invoice, None, processing)
            messages.error(request, str(exc))
            form = _pay_form(request, invoice, no_credit=no_credit, initial={"method": chosen})
        else:
            if outcome.status == "requires_action":
                if isinstance(source, services.PayWithNewCard) and source.save:
                    assert outcome.transaction is not None
                    _remember_card_to_save(request, outcome.transaction, source.token)
                to_bank = _to_bank(
                    request,
                    outcome.redirect_url,
                    reverse("billing:invoice_pay", args=[invoice.pk]),
                )
                if to_bank is not None:
                    return to_bank
                messages.error(request, BANK_PAGE_UNUSABLE)
                return redirect("billing:invoice_pay", pk=invoice.pk)
            if outcome.status == "processing":
                messages.info(request, outcome.message)
                return redirect("billing:invoice_detail", pk=invoice.pk)
            if outcome.status in ("declined", "failed"):
                # Nothing was charged: a fresh form (and key) to try again.
                messages.error(request, outcome.message)
                # Credit may have been applied first: the page shows what is left.
                invoice.refresh_from_db()
                request.access.account.refresh_from_db(fields=["credit_balance"])
                form = _pay_form(request, invoice, no_credit=no_credit, initial={"method": chosen})
            else:
                messages.success(request, outcome.message)
                return redirect("billing:invoice_detail", pk=invoice.pk)
    return _pay_page(request, invoice, form, None)


@requires(Perm.INVOICES)
@require_GET
def invoice_pay_return(request: AccountRequest, pk: int) -> HttpResponse:
    """Where the card processor sends the browser back after the card holder's bank
    (3-D Secure). Its query names the payment; what became of it is asked of the
    processor, never read from the query."""
    invoice = _invoice(request, pk)
    reference = request.GET.get("payment_intent", "")
    tx = selectors.payment_by_reference(invoice=invoice, reference=reference)
    card_token = _card_to_save(request, tx.pk if tx is not None else None)
    try:
        card = None
        if card_token:
            card = services.card_for_saving(card_token)
        outcome = services.card_payment_return(
            invoice_id=invoice.pk,
            access=request.access,
            reference=reference,
            card_to_save=card,
            request=request,
        )
    except services.BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing:invoice_detail", pk=invoice.pk)
    if outcome.status in ("paid", "partial"):
        messages.success(request, outcome.message)
        return redirect("billing:invoice_detail", pk=invoice.pk)
    if outcome.status in ("declined", "failed"):
        messages.error(request, outcome.message)
        return redirect("billing:invoice_pay", pk=invoice.pk)
    if outcome.status == "requires_action":
        # Back before the bank was done (the Back button): to the bank again, or to the
        # pay page, which offers to cancel.
        if card_token and outcome.transaction is not None:
            _remember_card_to_save(request, outcome.transaction, card_token)
        to_bank = _to_bank(
            request, outcome.redirect_url, reverse("billing:invoice_pay", args=[invoice.pk])
        )
        if to_bank is not None:
            return to_bank
        return redirect("billing:invoice_pay", pk=invoice.pk)
    messages.info(request, outcome.message)
    return redirect("billing:invoice_detail", pk=invoice.pk)


@requires(Perm.INVOICES)
@require_POST
def invoice_pay_cancel(request: AccountRequest, pk: int) -> HttpResponse:
    """Give up on a card payment left waiting at the card holder's bank."""
    invoice = _invoice(request, pk)
    try:
        outcome = services.card_payment_cancel(
            invoice_id=invoice.pk, access=request.access, request=request
        )
    except services.BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing:invoice_pay", pk=invoice.pk)
    if outcome.status in ("paid", "partial"):
        messages.success(request, outcome.message)
        return redirect("billing:invoice_detail", pk=invoice.pk)
    messages.info(request, "The payment was cancelled and nothing was charged: choose how to pay.")
    return redirect("billing:invoice_pay", pk=invoice.pk)


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
            "awaiting_authentication": processing is not None
            and processing.message == services.AWAITING_AUTHENTICATION,
            "credit_balance": request.access.account.credit_balance,
            "bank_details": settings.BILLING_BANK_DETAILS,
            "card_entry": card_entry_context(invoice.balance, invoice.currency, "payment"),
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
@sensitive_post_parameters("card_token")
@card_entry_csp
def payment_method_add(request: AccountRequest) -> HttpResponse:
    if gateways.card_gateway() is None:
        messages.info(request, "This installation takes no card payments, so no card is stored.")
        return redirect("billing:payment_methods")
    account = request.access.account
    form = CardForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            saved = services.payment_method_add(
                access=request.access,
                token=form.cleaned_data["card_token"],
                return_url=request.build_absolute_uri(reverse("billing:payment_method_return")),
                request=request,
            )
        except services.BillingError as exc:
            form.add_error(None, str(exc))
        else:
            if saved.method is None:
                # Only the save started here, in this account, may be finished by the
                # return page.
                request.session[SESSION_CARD_SAVE] = [account.pk, saved.reference]
                to_bank = _to_bank(
                    request, saved.redirect_url, reverse("billing:payment_method_add")
                )
                if to_bank is not None:
                    return to_bank
                messages.info(
                    request,
                    "Your bank is still confirming the card: it will be listed here once "
                    "confirmed.",
                )
                return redirect("billing:payment_methods")
            messages.success(request, f"The {saved.method.label} was saved.")
            return redirect("billing:payment_methods")
    return render(
        request,
        "billing/payment_method_add.html",
        {
            "form": form,
            "card_entry": card_entry_context(services.ZERO, account.currency, "setup"),
        },
    )


@owner_only
@require_GET
def payment_method_return(request: AccountRequest) -> HttpResponse:
    """Back from the card holder's bank after saving a card (3-D Secure). The query
    names the save; only the one this session started is taken, and what became of it
    is asked of the processor."""
    reference = request.GET.get("setup_intent", "")
    started = request.session.pop(SESSION_CARD_SAVE, None)
    if started is None:
        # Nothing waits (this page reloaded after the card was saved, or opened by hand).
        messages.info(request, "No card confirmation is open: your stored cards are listed here.")
        return redirect("billing:payment_methods")
    try:
        if not reference or started != [request.access.account.pk, reference]:
            raise services.BillingError("The card was not saved: add it again.")
        method = services.payment_method_save_return(
            access=request.access,
            reference=reference,
            request=request,
        )
    except services.BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing:payment_method_add")
    messages.success(request, f"The {method.label} was saved.")
    return redirect("billing:payment_methods")


@owner_only
@require_POST
def payment_method_remove(request: AccountRequest, pk: int) -> HttpResponse:
    account = request.access.account
    method = account_object_or_404(PaymentMethod.objects.all(), account, pk=pk)
    try:
        services.payment_method_remove(
            access=request.access, payment_method_id=method.pk, request=request
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


@requires(Perm.INVOICES)
@require_POST
def sandbox_tokenize(request: AccountRequest) -> HttpResponse:
    """The sandbox's tokenizer, as a processor's own would be (demonstrations only): the
    page's script sends the name of a test card and its expiry, never its number, and
    gets a signed token for the form to post instead of the card."""
    if not settings.DEMO_MODE or not gateways.is_sandbox():
        raise Http404("The sandbox takes cards only in demonstrations.")
    form = SandboxCardForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": form.first_error()}, status=400)
    try:
        card = gateways.SANDBOX.test_token(
            form.cleaned_data["card"], form.cleaned_data["exp_month"], form.cleaned_data["exp_year"]
        )
    except gateways.CardRejected as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(
        {
            "id": card.token,
            "brand": card.brand,
            "last4": card.last4,
            "exp_month": card.exp_month,
            "exp_year": card.exp_year,
        }
    )
