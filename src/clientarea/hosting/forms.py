from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.password_validation import password_validators_help_texts

from .models import Service


class ServicePasswordChangeForm(forms.Form):
    new_password1 = forms.CharField(
        label="New password",
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=" ".join(password_validators_help_texts()),
    )
    new_password2 = forms.CharField(
        label="Confirm new password",
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("new_password1"), data.get("new_password2")
        if first and second and first != second:
            self.add_error("new_password2", "The two passwords do not match.")
        return data


class StatusFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "All statuses"), *Service.Status.choices], required=False
    )
