"""The form of the API Tokens page: what a new token carries, offered within the
person's own grant (the service checks it again, whatever is posted)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from clientarea.accounts import permissions
from clientarea.accounts.forms_users import PermissionCheckboxes, scope_field_name
from clientarea.accounts.policy import Access
from clientarea.accounts.scope import SCOPE_KINDS, Scope
from clientarea.core.validators import validate_single_line

from .services import DEFAULT_LIFETIME, TokenError, networks_clean

USERS_POWER_REFUSED = "Only the account's owner can let a token manage users and invitations."

SCOPE_ALL = "all"
SCOPE_ONLY = "only"
MAX_DAYS = 365


def end_of_day(day: date) -> datetime:
    """The token works to the end of the chosen day, in the person's time zone."""
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        validators=[validate_single_line],
        help_text="What will use it, e.g. “Accounting export”.",
    )
    permissions = forms.MultipleChoiceField(
        label="Permissions",
        widget=PermissionCheckboxes,
        help_text="Only permissions you hold yourself. If yours are reduced later, the "
        "token loses them too.",
    )
    scope_mode = forms.ChoiceField(
        label="Services and domains",
        choices=[(SCOPE_ALL, "All that I can reach"), (SCOPE_ONLY, "Only these")],
        widget=forms.RadioSelect,
        initial=SCOPE_ALL,
        required=False,
        help_text="Invoices, contacts and the account profile are account-wide.",
    )
    expires_on = forms.DateField(
        label="Expires on",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text=f"Required: at most one year ahead. The token stops working at the end "
        f"of that day (by default in {DEFAULT_LIFETIME.days} days).",
    )
    allowed_networks = forms.CharField(
        label="Allowed networks (optional)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="IP addresses or CIDR ranges, one per line, e.g. 203.0.113.0/24. Leave "
        "empty to allow any address.",
    )

    def __init__(self, *args: Any, access: Access, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access = access
        granted = permissions.ALL_CODES if access.is_owner else access.permissions
        field = self.fields["permissions"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = [(code, label) for code, label in permissions.choices() if code in granted]
        field.error_messages["invalid_choice"] = (
            "%(value)s is not a permission you hold: a token carries only your own."
        )
        self.fields["expires_on"].initial = timezone.localdate() + DEFAULT_LIFETIME
        for kind in SCOPE_KINDS.values():
            reach = access.scope_ids(kind.name)
            label = kind.label.lower()
            items = [
                (str(pk), text)
                for pk, text in kind.choices(access.account)
                if reach is None or pk in reach
            ]
            if not items:
                continue  # nothing of this kind to choose (posted ids are then ignored)
            self.fields[scope_field_name(kind.name)] = forms.TypedMultipleChoiceField(
                label=f"Only these {label}",
                choices=items,
                coerce=int,
                widget=forms.CheckboxSelectMultiple,
                required=False,
                error_messages={
                    "invalid_choice": f"Choose only {label} you can reach; %(value)s is not one."
                },
            )
        if not any(scope_field_name(k) in self.fields for k in SCOPE_KINDS):
            del self.fields["scope_mode"]  # nothing to limit: all that the person reaches
        if access.is_owner:
            # The owner's Users power is never grantable; the owner may lend it to a
            # token of their own, by choice (off unless ticked).
            self.fields["manages_users"] = forms.BooleanField(
                label="Manage users and invitations",
                required=False,
                help_text="Lets the token list, invite, change and revoke the account's "
                "users through the API. Only you, as the owner, can give it; it stops when "
                "you are no longer the owner.",
            )
        self.order_fields(
            [
                "name",
                "permissions",
                "scope_mode",
                *(scope_field_name(k) for k in SCOPE_KINDS),
                "manages_users",
                "expires_on",
                "allowed_networks",
            ]
        )

    def clean_expires_on(self) -> date:
        day: date = self.cleaned_data["expires_on"]
        today = timezone.localdate()
        if day < today:
            raise forms.ValidationError("Choose today or a later date.")
        if day > today + timedelta(days=MAX_DAYS):
            raise forms.ValidationError("A token lasts at most one year: choose an earlier date.")
        return day

    def clean_allowed_networks(self) -> list[str]:
        text = self.cleaned_data.get("allowed_networks") or ""
        entries = [e for e in re.split(r"[\s,]+", text) if e]
        try:
            return networks_clean(entries)
        except TokenError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "manages_users" not in self.fields and "manages_users" in self.data:
            # Offered to the owner only: posted by anyone else, it is a forged field.
            self.add_error(None, USERS_POWER_REFUSED)
        if data.get("scope_mode") == SCOPE_ONLY and not any(
            data.get(scope_field_name(k)) for k in SCOPE_KINDS
        ):
            self.add_error(
                "scope_mode", "Tick at least one service or domain, or choose All that I can reach."
            )
        return data

    @property
    def scope(self) -> Scope | None:
        if self.cleaned_data.get("scope_mode") != SCOPE_ONLY:
            return None
        return {k: frozenset(self.cleaned_data.get(scope_field_name(k)) or ()) for k in SCOPE_KINDS}

    @property
    def manages_users(self) -> bool:
        return bool(self.cleaned_data.get("manages_users"))

    @property
    def expires_at(self) -> datetime:
        return end_of_day(self.cleaned_data["expires_on"])
