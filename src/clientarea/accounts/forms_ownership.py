"""Forms of Transfer Ownership, Close Account and deleting one's own login."""

from __future__ import annotations

from typing import Any

from django import forms

from .models import Account, Membership, User


class PersonChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.get_full_name()} <{obj.email}>"


class TransferForm(forms.Form):
    member = PersonChoiceField(
        label="A sub-account of this account",
        queryset=User.objects.none(),
        required=False,
        empty_label="— choose —",
    )
    email = forms.EmailField(
        label="Or an email address",
        required=False,
        help_text="They receive an invitation to become the owner.",
    )
    then = forms.ChoiceField(
        label="After the transfer, you",
        choices=[
            ("stay", "Stay as a sub-account with All Permissions"),
            ("leave", "Leave the account"),
        ],
        initial="stay",
        widget=forms.RadioSelect,
    )
    keep_payment_methods = forms.BooleanField(
        label="Leave my stored payment methods with the account",
        required=False,
        help_text="Otherwise they are removed when the new owner accepts.",
    )

    def __init__(self, account: Account, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        member_ids = Membership.objects.usable().filter(account=account).values("user_id")
        field = self.fields["member"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = User.objects.filter(pk__in=member_ids, is_active=True).order_by("email")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        member, email = data.get("member"), data.get("email")
        if member and email:
            raise forms.ValidationError("Choose a sub-account or enter an email address, not both.")
        if not member and not email and not self.errors:
            raise forms.ValidationError("Choose a sub-account or enter an email address.")
        return data

    @property
    def to_email(self) -> str:
        member = self.cleaned_data.get("member")
        return member.email if member else self.cleaned_data["email"]


class CloseAccountForm(forms.Form):
    """Closing is final once confirmed: the owner types their password to ask for it."""

    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text="Once our staff confirm, nobody can use this account any more.",
    )

    def __init__(self, user: User, *args: Any, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your current password.")
        return password
