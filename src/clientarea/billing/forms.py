from __future__ import annotations

import secrets
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone

from .gateways import CardDetails, card_brand, digits_only, luhn_valid
from .models import PaymentMethod

CREDIT = "credit"
NEW_CARD = "new_card"
BANK_TRANSFER = "bank_transfer"
STORED_PREFIX = "card-"


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(24)


class ForgetfulTextInput(forms.TextInput):
    """A text input that never writes its value back into the page (card number, CVC)."""

    def format_value(self, value: Any) -> str | None:
        return None


class CardFieldsMixin(forms.Form):
    card_number = forms.CharField(
        label="Card number",
        required=False,
        max_length=23,
        widget=ForgetfulTextInput(attrs={"autocomplete": "cc-number", "inputmode": "numeric"}),
    )
    exp_month = forms.TypedChoiceField(
        label="Expiry month",
        required=False,
        coerce=int,
        choices=[("", "MM")] + [(m, f"{m:02d}") for m in range(1, 13)],
        widget=forms.Select(attrs={"autocomplete": "cc-exp-month"}),
    )
    exp_year = forms.TypedChoiceField(
        label="Expiry year",
        required=False,
        coerce=int,
        choices=[],
        widget=forms.Select(attrs={"autocomplete": "cc-exp-year"}),
    )
    cvc = forms.CharField(
        label="Security code (CVC)",
        required=False,
        max_length=4,
        widget=ForgetfulTextInput(
            attrs={"autocomplete": "cc-csc", "inputmode": "numeric", "size": 4}
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        year = timezone.localdate().year
        self.fields["exp_year"].choices = [("", "YYYY")] + [  # type: ignore[attr-defined]
            (y, str(y)) for y in range(year, year + 16)
        ]

    def clean_card(self) -> CardDetails | None:
        """Validate the card fields (Luhn, expiry, CVC); errors land on the fields."""
        data = self.cleaned_data
        number = digits_only(data.get("card_number") or "")
        month, year = data.get("exp_month"), data.get("exp_year")
        cvc = (data.get("cvc") or "").strip()
        ok = True
        if not number:
            self.add_error("card_number", "Enter the card number.")
            ok = False
        elif not luhn_valid(number):
            self.add_error("card_number", "That card number is not valid: check the digits.")
            ok = False
        if not month or not year:
            self.add_error("exp_month", "Choose the expiry month and year.")
            ok = False
        else:
            today = timezone.localdate()
            if (year, month) < (today.year, today.month):
                self.add_error("exp_month", "This card has expired.")
                ok = False
        wanted = 4 if number and card_brand(number) == "Amex" else 3
        if not (cvc.isascii() and cvc.isdigit() and len(cvc) == wanted):
            self.add_error("cvc", f"Enter the {wanted}-digit security code.")
            ok = False
        if not ok:
            return None
        assert isinstance(month, int) and isinstance(year, int)
        return CardDetails(number=number, exp_month=month, exp_year=year, cvc=cvc)


class CardForm(CardFieldsMixin):
    """Add a stored card (owner only)."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self.card = self.clean_card()
        return cleaned


class PayForm(CardFieldsMixin):
    """Pay an invoice: credit, a stored card, a new card (entered once), or bank transfer."""

    method = forms.ChoiceField(label="Pay with", widget=forms.RadioSelect)
    save_card = forms.BooleanField(label="Save this card for future payments", required=False)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    field_order = ["method", "card_number", "exp_month", "exp_year", "cvc", "save_card"]

    def __init__(
        self,
        *args: Any,
        payment_methods: Sequence[PaymentMethod],
        credit_balance: Decimal,
        currency: str,
        is_owner: bool,
        takes_new_cards: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        choices: list[tuple[str, str]] = []
        if credit_balance > 0:
            choices.append((CREDIT, f"Credit balance ({credit_balance} {currency})"))
        # Only brand and last four: what anyone paying may see of a stored card.
        choices += [(f"{STORED_PREFIX}{m.pk}", m.label) for m in payment_methods]
        if takes_new_cards:
            choices.append((NEW_CARD, "A new card"))
        choices.append((BANK_TRANSFER, "Bank transfer"))
        self.fields["method"].choices = choices  # type: ignore[attr-defined]
        if not self.is_bound:
            self.fields["method"].initial = choices[0][0]
            self.fields["idempotency_key"].initial = new_idempotency_key()
        if not takes_new_cards:
            for name in ("card_number", "exp_month", "exp_year", "cvc", "save_card"):
                self.fields.pop(name, None)
        elif not is_owner:
            # Only the owner stores cards: a sub-account is not even offered the box,
            # and the service ignores it if forged.
            del self.fields["save_card"]
        self.card: CardDetails | None = None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("method") == NEW_CARD:
            self.card = self.clean_card()
        return cleaned

    @property
    def stored_method_id(self) -> int | None:
        method = self.cleaned_data.get("method", "")
        if method.startswith(STORED_PREFIX):
            return int(method.removeprefix(STORED_PREFIX))
        return None


class AddFundsForm(forms.Form):
    amount = forms.DecimalField(
        label="Amount",
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
        error_messages={
            "invalid": "Enter an amount such as 50.00.",
            "max_decimal_places": "Enter the amount in whole cents.",
        },
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )

    def __init__(self, *args: Any, low: Decimal, high: Decimal, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # No min/max in the page: the limits are said in words, by the server, on the form.
        self.low, self.high = low, high

    def clean_amount(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount"]
        if not self.low <= amount <= self.high:
            raise forms.ValidationError(f"Enter an amount between {self.low} and {self.high}.")
        return amount


class PaySeveralForm(forms.Form):
    """The invoices chosen on the invoice list (ids; the service checks each one)."""

    invoices = forms.TypedMultipleChoiceField(coerce=int, choices=[])

    def __init__(self, *args: Any, invoice_ids: Sequence[int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["invoices"]
        assert isinstance(field, forms.TypedMultipleChoiceField)
        field.choices = [(str(pk), str(pk)) for pk in invoice_ids]
        field.error_messages["invalid_choice"] = (
            "One of the chosen invoices cannot be paid here: reload the page and choose again."
        )
