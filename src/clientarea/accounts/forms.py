from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from clientarea.core.validators import time_zone_names
from clientarea.notifications.services import email_send_to_person

from .models import Account, User


class EmailAuthenticationForm(auth_forms.AuthenticationForm):
    """Login by email. Wrong password and unknown email get the very same message."""

    username = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )
    error_messages = {
        "invalid_login": "That email address and password do not match an active login.",
        "inactive": "That email address and password do not match an active login.",
    }


class QueuedPasswordResetForm(auth_forms.PasswordResetForm):
    """Sends the reset link through the outbox, built from SITE_URL (never the Host
    header, which an attacker controls). Unknown emails silently send nothing."""

    def save(self, *args: Any, **kwargs: Any) -> None:
        email = self.cleaned_data["email"]
        for user in self.get_users(email):
            uid = urlsafe_base64_encode(force_bytes(user.pk))
            token = default_token_generator.make_token(user)
            path = reverse("accounts:password_reset_confirm", args=[uid, token])
            email_send_to_person(
                to_email=user.email,
                to_name=user.get_full_name(),
                template="accounts/email/password_reset",
                context={"user": user, "reset_url": f"{settings.SITE_URL}{path}"},
            )


class TwoFactorTokenForm(forms.Form):
    """Second login step: a code from the authenticator app, or a recovery code."""

    token = forms.CharField(
        label="Authentication code",
        max_length=40,
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "inputmode": "text"}
        ),
    )


class UserProfileForm(forms.ModelForm):
    time_zone = forms.ChoiceField(
        label="Time zone",
        choices=[(name, name.replace("_", " ")) for name in sorted(time_zone_names())],
        help_text="Every date and time is shown in this zone.",
        required=False,  # left out: the current zone stays
    )

    class Meta:
        model = User
        fields = ["first_name", "last_name", "time_zone"]


class AccountProfileForm(forms.ModelForm):
    class Meta:
        model = Account
        fields = [
            "company_name",
            "address_line1",
            "address_line2",
            "city",
            "postcode",
            "country",
            "tax_number",
        ]
        error_messages = {
            "country": {
                "invalid_choice": "Choose a country from the list (%(value)s is not one).",
            }
        }
        widgets = {"tax_number": forms.TextInput(attrs={"spellcheck": "false"})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_bound and isinstance(self.data.get("country"), str):
            data = self.data.copy()  # type: ignore[attr-defined]  # a QueryDict or a dict
            data["country"] = data["country"].strip().upper()  # "ie" is still Ireland
            self.data = data


class SelectAccountForm(forms.Form):
    account = forms.IntegerField(min_value=1)


class PasswordConfirmForm(forms.Form):
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )

    def __init__(self, user: User, *args: Any, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError("That is not your current password.")
        return password
