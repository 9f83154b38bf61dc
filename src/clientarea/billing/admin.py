"""Back office for billing. Every change goes through the billing services, so staff
actions are locked, audited and emailed exactly like the client area's."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import BaseInlineFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from clientarea.accounts.models import User

from . import refunds, services
from .models import (
    CreditEntry,
    Invoice,
    InvoiceLine,
    PaymentMethod,
    StripeCustomer,
    StripeEvent,
    Transaction,
)
from .totals import LineInput


class CardRefundForm(forms.Form):
    """Refund a Stripe card payment of one invoice, in full or in part."""

    payment = forms.TypedChoiceField(coerce=int, label="Card payment")
    amount = forms.CharField(
        required=False,
        max_length=20,
        help_text="Empty: all that is left of the payment. Otherwise e.g. 25.00.",
    )
    reason = forms.ChoiceField(required=False, choices=[("", "(none)"), *refunds.REASONS.items()])

    def __init__(self, *args: Any, choices: list[tuple[Transaction, Decimal]], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["payment"].choices = [  # type: ignore[attr-defined]
            (
                payment.pk,
                f"{payment.amount} {payment.currency} on {payment.created_at:%Y-%m-%d} "
                f"({payment.method_label or 'card'}, {payment.reference}): {left} left",
            )
            for payment, left in choices
        ]

    def clean_amount(self) -> Decimal | None:
        try:
            return refunds.parse_amount(self.cleaned_data.get("amount") or "")
        except refunds.RefundError as exc:
            raise forms.ValidationError(str(exc)) from None


class InvoiceAddForm(forms.ModelForm):
    class Meta:
        model = Invoice
        fields = ["account", "issue_date", "due_date", "notes"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        issue, due = cleaned.get("issue_date"), cleaned.get("due_date")
        if issue and due and due < issue:
            self.add_error("due_date", "The due date cannot be before the issue date.")
        return cleaned


class InvoiceLineForm(forms.ModelForm):
    class Meta:
        model = InvoiceLine
        fields = ["description", "quantity", "unit_price", "tax_rate"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if (q := cleaned.get("quantity")) is not None and q <= 0:
            self.add_error("quantity", "The quantity must be more than 0.")
        if (p := cleaned.get("unit_price")) is not None and p < 0:
            self.add_error("unit_price", "The price cannot be negative.")
        if (t := cleaned.get("tax_rate")) is not None and not 0 <= t <= 100:
            self.add_error("tax_rate", "The tax rate is a percentage between 0 and 100.")
        return cleaned


class CreditAddForm(forms.ModelForm):
    class Meta:
        model = CreditEntry
        fields = ["account", "amount", "reason"]
        help_texts = {"amount": "The credit to add, e.g. 25.00."}

    def clean_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        if amount <= 0:
            raise forms.ValidationError("Enter a positive amount.")
        return amount


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    form = InvoiceLineForm
    fields = ("description", "quantity", "unit_price", "tax_rate", "net_amount", "tax_amount")
    readonly_fields = ("net_amount", "tax_amount")
    min_num = 1
    validate_min = True
    can_delete = False

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 2 if obj is None else 0

    # An issued invoice never changes: its lines are editable only while adding it.
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)


class TransactionInline(admin.TabularInline):
    model = Transaction
    fields = (
        "created_at",
        "kind",
        "status",
        "gateway",
        "amount",
        "method_label",
        "payer_label",
        "reference",
        "message",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _run(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Invoice],
    action: Callable[[Invoice], object],
    done: str,
) -> None:
    count = 0
    for invoice in queryset.order_by("number"):
        try:
            action(invoice)
        except services.BillingError as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
        else:
            count += 1
    if count:
        modeladmin.message_user(request, f"{count} invoice(s) {done}.", messages.SUCCESS)


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    list_display = [
        "number",
        "account",
        "issue_date",
        "due_date",
        "total",
        "amount_paid",
        "currency",
        "status_label",
        "awaiting_transfer_since",
    ]
    list_filter = ["status", "issue_date"]
    search_fields = ["number", "account__company_name", "account__owner__email"]
    list_select_related = ["account__owner"]
    autocomplete_fields = ["account"]
    form = InvoiceAddForm
    inlines = [InvoiceLineInline, TransactionInline]
    actions = [
        "cancel",
        "refund_card",
        "refund_to_credit",
        "mark_refunded",
        "confirm_bank_transfer",
    ]
    date_hierarchy = "issue_date"

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:invoice_id>/refund-card/",
                self.admin_site.admin_view(self.card_refund_view),
                name="billing_invoice_refund_card",
            ),
            *super().get_urls(),
        ]

    @admin.action(description="Refund a card payment through Stripe…", permissions=["change"])
    def refund_card(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one invoice to refund.", messages.WARNING)
            return None
        invoice = queryset.get()
        return HttpResponseRedirect(reverse("admin:billing_invoice_refund_card", args=[invoice.pk]))

    def card_refund_view(self, request: HttpRequest, invoice_id: int) -> HttpResponse:
        """Staff refund a Stripe card payment of the invoice (change permission needed,
        as for the other refunds): a form error for bad input, never a server error."""
        invoice = get_object_or_404(Invoice.objects.select_related("account__owner"), pk=invoice_id)
        if not self.has_change_permission(request, invoice):
            raise PermissionDenied
        choices = refunds.refundable_payments(invoice)
        form = CardRefundForm(request.POST or None, choices=choices) if choices else None
        if form is not None and request.method == "POST" and form.is_valid():
            assert isinstance(request.user, User)
            try:
                outcome = refunds.card_refund(
                    invoice_id=invoice.pk,
                    payment_id=form.cleaned_data["payment"],
                    amount=form.cleaned_data["amount"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                    request=request,
                )
            except refunds.RefundError as exc:
                form.add_error(None, str(exc))
            else:
                level = {
                    "refunded": messages.SUCCESS,
                    "processing": messages.WARNING,
                    "failed": messages.ERROR,
                }[outcome.status]
                self.message_user(request, f"Invoice #{invoice.number}: {outcome.message}", level)
                return HttpResponseRedirect(
                    reverse("admin:billing_invoice_change", args=[invoice.pk])
                )
        return TemplateResponse(
            request,
            "admin/billing/card_refund.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": f"Refund a card payment of invoice #{invoice.number}",
                "invoice": invoice,
                "form": form,
                "in_flight": refunds.refund_in_flight(invoice),
            },
        )

    @admin.display(description="status")
    def status_label(self, obj: Invoice) -> str:
        return obj.display_status_label

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["account", "issue_date", "due_date", "notes"]
        return [
            "number",
            "account",
            "status",
            "currency",
            "issue_date",
            "due_date",
            "billing_name",
            "billing_address",
            "subtotal",
            "tax",
            "total",
            "amount_paid",
            "awaiting_transfer_since",
            "paid_at",
            "notes",
            "card_refunds",
        ]

    @admin.display(description="card refunds")
    def card_refunds(self, obj: Invoice) -> str:
        """Refunds through Stripe: one being processed, and the link to make one."""
        in_flight = refunds.refund_in_flight(obj)
        if in_flight is not None:
            return format_html(
                "A refund of {} {} is being processed: Stripe has not confirmed it yet.",
                in_flight.amount,
                in_flight.currency,
            )
        if not refunds.refundable_payments(obj):
            return "No card payment to refund through Stripe."
        return format_html(
            '<a href="{}">Refund a card payment through Stripe…</a>',
            reverse("admin:billing_invoice_refund_card", args=[obj.pk]),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else self.get_fields(request, obj)

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return [InvoiceLineInline] if obj is None else [InvoiceLineInline, TransactionInline]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # invoice numbers are never reused; cancel instead

    def save_model(self, request: HttpRequest, obj: Invoice, form: ModelForm, change: bool) -> None:
        # Nothing is edited in place; a new invoice is created with its lines in
        # save_related, through invoice_create (number, totals, audit, email).
        pass

    def save_related(
        self,
        request: HttpRequest,
        form: ModelForm,
        formsets: list[BaseInlineFormSet],
        change: bool,
    ) -> None:
        if change:
            return
        lines = [
            LineInput(
                description=f.cleaned_data["description"],
                quantity=f.cleaned_data["quantity"],
                unit_price=f.cleaned_data["unit_price"],
                tax_rate=f.cleaned_data.get("tax_rate") or Decimal("0"),
            )
            for formset in formsets
            for f in formset.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        data = form.cleaned_data
        invoice = services.invoice_create(
            account=data["account"],
            lines=lines,
            issue_date=data["issue_date"],
            due_date=data["due_date"],
            notes=data.get("notes") or "",
            actor=request.user,  # type: ignore[arg-type]
            request=request,
        )
        form.instance.pk = invoice.pk
        form.instance.number = invoice.number

    def construct_change_message(
        self, request: HttpRequest, form: Any, formsets: Any, add: bool = False
    ) -> list[dict[str, Any]]:
        if add:
            return [{"added": {}}]
        return super().construct_change_message(request, form, formsets, add)

    @admin.action(description="Cancel selected unpaid invoices")
    def cancel(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        _run(
            self,
            request,
            queryset,
            lambda i: services.invoice_cancel(invoice_id=i.pk, actor=request.user, request=request),  # type: ignore[arg-type]
            "cancelled",
        )

    @admin.action(
        description="Refund selected invoices to the account's credit balance",
        permissions=["change"],
    )
    def refund_to_credit(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        _run(
            self,
            request,
            queryset,
            lambda i: services.invoice_refund(
                invoice_id=i.pk,
                actor=request.user,  # type: ignore[arg-type]
                to_credit=True,
                request=request,
            ),
            "refunded to credit",
        )

    @admin.action(
        description="Mark selected invoices refunded (money returned outside)",
        permissions=["change"],
    )
    def mark_refunded(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        _run(
            self,
            request,
            queryset,
            lambda i: services.invoice_refund(
                invoice_id=i.pk,
                actor=request.user,  # type: ignore[arg-type]
                to_credit=False,
                request=request,
            ),
            "marked refunded",
        )

    @admin.action(description="Confirm bank transfer received for selected invoices")
    def confirm_bank_transfer(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        _run(
            self,
            request,
            queryset,
            lambda i: services.bank_transfer_confirm(
                invoice_id=i.pk,
                actor=request.user,  # type: ignore[arg-type]
                request=request,
            ),
            "confirmed as paid by bank transfer",
        )


@admin.register(CreditEntry)
class CreditEntryAdmin(admin.ModelAdmin):
    """The credit ledger. "Add credit entry" is the small form staff use to add credit."""

    list_display = ["created_at", "account", "kind", "amount", "balance_after", "reason", "actor"]
    list_filter = ["kind"]
    search_fields = ["account__company_name", "reason"]
    list_select_related = ["account__owner", "actor"]
    autocomplete_fields = ["account"]
    form = CreditAddForm

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["account", "amount", "reason"]
        return ["account", "kind", "amount", "balance_after", "reason", "invoice", "actor"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else self.get_fields(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: CreditEntry, form: ModelForm, change: bool
    ) -> None:
        if change:
            return
        entry = services.credit_add(
            account_id=form.cleaned_data["account"].pk,
            amount=form.cleaned_data["amount"],
            reason=form.cleaned_data["reason"],
            actor=request.user,  # type: ignore[arg-type]
            request=request,
        )
        obj.pk = entry.pk
        obj.balance_after = entry.balance_after


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "invoice",
        "account",
        "kind",
        "status",
        "gateway",
        "amount",
        "currency",
        "method_label",
        "payer_label",
        "reference",
    ]
    list_filter = ["status", "kind", "gateway"]
    search_fields = ["reference", "invoice__number", "account__company_name"]
    list_select_related = ["invoice", "account__owner"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PaymentMethod)
class PaymentMethodAdmin(admin.ModelAdmin):
    list_display = ["account", "brand", "last4", "exp_month", "exp_year", "created_at"]
    search_fields = ["account__company_name", "last4"]
    list_select_related = ["account__owner"]
    fields = ("account", "gateway", "brand", "last4", "exp_month", "exp_year", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    """What Stripe's webhooks told us and what was done: disputes to answer in Stripe's
    dashboard, refunds made there, cards saved."""

    list_display = ["received_at", "type", "object_id", "livemode", "result"]
    list_filter = ["type", "livemode"]
    search_fields = ["event_id", "object_id", "result"]
    fields = ("event_id", "type", "object_id", "livemode", "created", "received_at", "result")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StripeCustomer)
class StripeCustomerAdmin(admin.ModelAdmin):
    list_display = ["account", "customer_id", "livemode", "created_at"]
    search_fields = ["account__company_name", "customer_id"]
    list_select_related = ["account__owner"]
    fields = ("account", "customer_id", "livemode", "created_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
