"""What the API answers: plain read serializers over the same rows the pages show."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from clientarea.billing.models import Invoice, InvoiceLine
from clientarea.billing.selectors import STATUS_FILTERS
from clientarea.domains.models import Domain
from clientarea.hosting.models import Service


class QueryChoiceField(serializers.ChoiceField):
    """A choice in the query string. DRF reads an empty value (``?status=``) of an
    optional field as "not given"; here it is what it is, not a choice, and refused, as
    the schema (an enum) says."""

    def get_value(self, dictionary: Any) -> Any:
        if self.field_name in dictionary:
            return dictionary[self.field_name]
        return super().get_value(dictionary)


class JsonCharField(serializers.CharField):
    """A JSON string, nothing else: DRF's field turns 0 into "0", which the schema (a
    string) does not allow."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


class JsonBooleanField(serializers.BooleanField):
    """JSON's true or false, nothing else: DRF's field also takes 0, 1, "yes" and
    "off", which the schema (a boolean) does not allow."""

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        self.fail("invalid", input=data)
        raise AssertionError("unreachable")  # pragma: no cover


class InvoiceFilter(serializers.Serializer):
    status = QueryChoiceField(
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


# --- services and domains -------------------------------------------------------------------


class ServiceFilter(serializers.Serializer):
    status = QueryChoiceField(
        choices=Service.Status.choices,
        required=False,
        help_text="Only services of this status.",
        error_messages={
            "invalid_choice": "Not a status: use one of " + ", ".join(Service.Status.values) + "."
        },
    )


class ServiceSerializer(serializers.ModelSerializer):
    password_stored = serializers.BooleanField(
        read_only=True,
        help_text="Whether a control-panel password is stored (never the password itself).",
    )

    class Meta:
        model = Service
        fields = [
            "id",
            "product_name",
            "domain",
            "status",
            "billing_cycle",
            "amount",
            "next_due_date",
            "username",
            "server_hostname",
            "password_stored",
            "password_changed_at",
        ]
        read_only_fields = fields


class PendingChangeSerializer(serializers.Serializer):
    what = serializers.CharField(read_only=True, help_text="e.g. 'password change'.")
    since = serializers.DateTimeField(read_only=True)


class ServiceDetailSerializer(ServiceSerializer):
    pending_change = PendingChangeSerializer(
        allow_null=True,
        read_only=True,
        help_text="A password change still waiting for the control panel's answer, or null.",
    )

    class Meta(ServiceSerializer.Meta):
        fields = [*ServiceSerializer.Meta.fields, "pending_change"]
        read_only_fields = fields


class RevealedPasswordSerializer(serializers.Serializer):
    password = serializers.CharField(read_only=True)


class PasswordChangeSerializer(serializers.Serializer):
    password = serializers.CharField(
        min_length=8,  # with two-factor on; 15 without (the password rules say which)
        max_length=128,
        trim_whitespace=False,
        help_text="The new control-panel password, checked as the page checks it.",
    )


class ChangeResultSerializer(serializers.Serializer):
    status = serializers.CharField(
        read_only=True,
        help_text="'done': made; 'pending': handed over, not yet confirmed (answered 202).",
    )
    detail = serializers.CharField(read_only=True)


class DomainFilter(serializers.Serializer):
    status = QueryChoiceField(
        choices=Domain.Status.choices,
        required=False,
        help_text="Only domains of this status.",
        error_messages={
            "invalid_choice": "Not a status: use one of " + ", ".join(Domain.Status.values) + "."
        },
    )


class DomainSerializer(serializers.ModelSerializer):
    unicode_name = serializers.CharField(read_only=True, help_text="The name as people read it.")
    nameservers = serializers.ListField(
        child=serializers.CharField(), source="nameserver_list", read_only=True
    )

    class Meta:
        model = Domain
        fields = [
            "id",
            "name",
            "unicode_name",
            "status",
            "registration_date",
            "expiry_date",
            "auto_renew",
            "registrar_lock",
            "nameservers",
        ]
        read_only_fields = fields


class DomainDetailSerializer(DomainSerializer):
    pending_change = PendingChangeSerializer(
        allow_null=True,
        read_only=True,
        help_text="A change still waiting for the registry's answer, or null.",
    )

    class Meta(DomainSerializer.Meta):
        fields = [*DomainSerializer.Meta.fields, "pending_change"]
        read_only_fields = fields


class NameserversSerializer(serializers.Serializer):
    nameservers = serializers.ListField(
        child=serializers.CharField(max_length=253, trim_whitespace=False),
        min_length=2,
        max_length=5,
        help_text="2 to 5 host names, in order, each once.",
    )


class LockSerializer(serializers.Serializer):
    locked = JsonBooleanField(help_text="true: locked against transfer.")


class AutoRenewSerializer(serializers.Serializer):
    enabled = JsonBooleanField(help_text="true: renewal invoices are issued.")
