from __future__ import annotations

from typing import Any

from django import forms

from .models import Service


class ServicePasswordChangeForm(forms.Form):
    new_password1 = forms.CharField(
        label="New password",
        strip=False,
        max_length=128,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        # The login-password help talks about two-factor, which a panel password never has.
        help_text=(
            "At least 15 characters (a phrase works well), not a common password, not like "
            "the username or domain, and no spaces at the start or end."
        ),
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
