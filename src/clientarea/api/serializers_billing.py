"""What the API's billing endpoints take and answer (paying an invoice)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from .serializers import InvoiceDetailSerializer

CREDIT = "credit"
STORED_CARD = "stored_card"


class InvoicePaySerializer(serializers.Serializer):
    method = serializers.ChoiceField(
        choices=[
            (CREDIT, "The account's credit balance"),
            (STORED_CARD, "A card stored on the account (payment_method)"),
        ],
        help_text="'credit': the credit balance pays what it can; 'stored_card': the card "
        "`payment_method` pays the balance.",
        error_messages={"invalid_choice": "Not a payment method: use 'credit' or 'stored_card'."},
    )
    payment_method = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text="With 'stored_card': the id of one of the account's stored cards.",
    )
    apply_credit_first = serializers.BooleanField(
        required=False,
        default=False,
        help_text="With 'stored_card': the credit balance pays what it can first, the card "
        "the rest (the credit stays applied if the card is then refused). Paying with "
        "'credit' applies it anyway.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["method"] == STORED_CARD and attrs.get("payment_method") is None:
            raise serializers.ValidationError(
                {"payment_method": ["Name the stored card to pay with."]}
            )
        if attrs["method"] == CREDIT:
            if attrs.get("payment_method") is not None:
                raise serializers.ValidationError(
                    {"payment_method": ["Only a stored card payment names a card."]}
                )
            attrs["apply_credit_first"] = False  # paying with credit applies it already
        return attrs


class TransactionSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    status = serializers.CharField(read_only=True)
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, read_only=True)
    currency = serializers.CharField(read_only=True)
    method = serializers.CharField(source="method_label", read_only=True)


class PaymentResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["paid", "partial", "processing"],
        read_only=True,
        help_text="'paid': nothing is left to pay; 'partial': the credit balance paid part "
        "of it (balance says what is left); 'processing': the card processor has not "
        "answered yet (answered 202): the invoice updates when it does.",
    )
    detail = serializers.CharField(read_only=True)
    transaction = TransactionSerializer(read_only=True, allow_null=True)
    invoice = InvoiceDetailSerializer(read_only=True)
