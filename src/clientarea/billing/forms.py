from __future__ import annotations

import secrets
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone

from .gateways import SANDBOX_CARDS
from .models import PaymentMethod

CREDIT = "credit"
NEW_CARD = "new_card"
BANK_TRANSFER = "bank_transfer"
STORED_PREFIX = "card-"


def new_idempotency_key() -> str:
    return secrets.token_urlsafe(24)


class CardTokenMixin(forms.Form):
    """The card as the browser handed it to the card processor: a token, never a number.

    The card's own inputs (number, expiry, security code) are written in the template
    without a ``name`` (``billing/_card_entry.html``), so the browser never posts them to
    us; the page's script gives them to the processor and puts its token here."""

    # Its length and characters are checked by the payment services, which say so in
    # words (a hidden field's own errors would read "(Hidden field card_token) ...").
    card_token = forms.CharField(required=False, widget=forms.HiddenInput, strip=True)


class CardForm(CardTokenMixin):
    """Add a stored card (owner only)."""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not cleaned.get("card_token"):
            self.add_error(None, MISSING_CARD)
        return cleaned


MISSING_CARD = (
    "Enter the card's number, expiry and security code (the card form needs JavaScript), "
    "or choose another way to pay."
)


class PayForm(CardTokenMixin):
    """Pay an invoice: credit, a stored card, a new card, or bank transfer.

    The method chosen by default pays the whole balance. Credit that covers only part of
    it is never a method of its own: it is offered as "apply my credit first", with the
    method that pays the rest."""

    method = forms.ChoiceField(label="Pay with", widget=forms.RadioSelect)
    apply_credit = forms.BooleanField(required=False)
    save_card = forms.BooleanField(label="Save this card for future payments", required=False)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    field_order = ["apply_credit", "method", "save_card"]

    def __init__(
        self,
        *args: Any,
        payment_methods: Sequence[PaymentMethod],
        credit_balance: Decimal,
        balance: Decimal,
        currency: str,
        is_owner: bool,
        takes_new_cards: bool = True,
        credit_pays_part: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        choices: list[tuple[str, str]] = []
        covers = credit_balance >= balance > 0
        if credit_balance > 0 and covers:
            choices.append((CREDIT, f"Credit balance ({credit_balance} {currency})"))
        # Only brand and last four: what anyone paying may see of a stored card.
        choices += [(f"{STORED_PREFIX}{m.pk}", m.label) for m in payment_methods]
        if takes_new_cards:
            choices.append((NEW_CARD, "A new card"))
        choices.append((BANK_TRANSFER, "Bank transfer"))
        self.fields["method"].choices = choices  # type: ignore[attr-defined]
        self.credit_part = credit_balance if 0 < credit_balance < balance else None
        self.rest: Decimal | None = None  # what is left to pay once the credit is applied
        if self.credit_part is not None and credit_pays_part:
            rest = self.rest = balance - credit_balance
            self.fields["apply_credit"].label = (
                f"Apply my credit balance ({credit_balance} {currency}) first, then pay the "
                f"rest ({rest} {currency}) by the method chosen below"
            )
        else:
            self.credit_part = None
            self.rest = None
            del self.fields["apply_credit"]
        if not self.is_bound:
            self.fields["method"].initial = choices[0][0]
            self.fields["idempotency_key"].initial = new_idempotency_key()
        if not takes_new_cards:
            self.fields.pop("save_card", None)
        elif not is_owner:
            # Only the owner stores cards: a sub-account is not even offered the box,
            # and the service ignores it if forged.
            del self.fields["save_card"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("method") == NEW_CARD and not cleaned.get("card_token"):
            self.add_error("method", MISSING_CARD)
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


class SandboxCardForm(forms.Form):
    """What the sandbox's tokenizer takes: a test card's name and its expiry."""

    card = forms.ChoiceField(choices=[])
    exp_month = forms.IntegerField(min_value=1, max_value=12)
    exp_year = forms.IntegerField(min_value=2000, max_value=2099)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["card"].choices = [  # type: ignore[attr-defined]
            (name, name) for name in SANDBOX_CARDS
        ]
        self.fields["card"].error_messages["invalid_choice"] = (
            "This is a test (sandbox) gateway: use one of its test card numbers."
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        month, year = cleaned.get("exp_month"), cleaned.get("exp_year")
        if month and year:
            today = timezone.localdate()
            if (year, month) < (today.year, today.month):
                self.add_error("exp_month", "This card has expired.")
        return cleaned

    def first_error(self) -> str:
        for errors in self.errors.values():
            return str(errors[0])
        return "Check the card details."
