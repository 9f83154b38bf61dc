"""What the API answers: plain read serializers over the same rows the pages show."""

from __future__ import annotations

from rest_framework import serializers

from clientarea.billing.models import Invoice, InvoiceLine
from clientarea.billing.selectors import STATUS_FILTERS


class InvoiceFilter(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=list(STATUS_FILTERS.items()),
        required=False,
        help_text="Only invoices of this status ('unpaid' includes the overdue ones).",
        error_messages={
            "invalid_choice": "Not a status: use one of " + ", ".join(STATUS_FILTERS) + "."
        },
    )


class InvoiceSerializer(serializers.ModelSerializer):
    status = serializers.ChoiceField(
        source="display_status",
        choices=list(STATUS_FILTERS.items()),
        read_only=True,
        help_text="As on the pages: an unpaid invoice past its due date is 'overdue'.",
    )
    balance = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "status",
            "currency",
            "issue_date",
            "due_date",
            "subtotal",
            "tax",
            "total",
            "amount_paid",
            "balance",
            "paid_at",
        ]
        read_only_fields = fields


class InvoiceLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = [
            "description",
            "quantity",
            "unit_price",
            "tax_rate",
            "net_amount",
            "tax_amount",
        ]
        read_only_fields = fields


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)
    tax_number = serializers.CharField(
        source="bill_to_tax_number", read_only=True, help_text="As issued ('' for none)."
    )

    class Meta(InvoiceSerializer.Meta):
        fields = [
            *InvoiceSerializer.Meta.fields,
            "billing_name",
            "billing_address",
            "tax_number",
            "notes",
            "lines",
        ]
        read_only_fields = fields


class ScopeSerializer(serializers.Serializer):
    service = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    domain = serializers.ListField(child=serializers.IntegerField(), read_only=True)


class TokenInfoSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)
    permissions = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="What the token may do now: its own permissions that its creator still holds.",
    )
    scope = ScopeSerializer(
        allow_null=True,
        read_only=True,
        help_text="null: every service and domain; otherwise only these ids.",
    )


class ProfileSerializer(serializers.Serializer):
    company_name = serializers.CharField(read_only=True)
    address_line1 = serializers.CharField(read_only=True)
    address_line2 = serializers.CharField(read_only=True)
    city = serializers.CharField(read_only=True)
    postcode = serializers.CharField(read_only=True)
    country = serializers.CharField(read_only=True)
    tax_number = serializers.CharField(read_only=True)


class AccountSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)
    currency = serializers.CharField(read_only=True)
    credit_balance = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        allow_null=True,
        read_only=True,
        help_text="null unless the token carries invoices (View & Pay Invoices).",
    )
    profile = ProfileSerializer(
        allow_null=True,
        read_only=True,
        help_text="null unless the token carries profile (Modify Account Profile).",
    )
    token = TokenInfoSerializer(read_only=True)
