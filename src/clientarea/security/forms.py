from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import PasswordChangeForm

from clientarea.accounts.models import User, normalize_email


class TotpConfirmForm(forms.Form):
    token = forms.CharField(
        label="Code from the app",
        max_length=10,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


class SecurityPasswordChangeForm(PasswordChangeForm):
    """Current password plus the new one (ASVS 6.2.3); NIST length rules via the
    validators in settings, no composition rules."""


class EmailChangeForm(forms.Form):
    email = forms.EmailField(label="New email address", max_length=254)

    def __init__(self, user: User, *args: Any, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        if email == self.user.email:
            raise forms.ValidationError("That is already your email address.")
        return email


class RequireTwoFactorForm(forms.Form):
    required = forms.BooleanField(
        label="Require two-factor authentication for all users of this account",
        required=False,
    )
