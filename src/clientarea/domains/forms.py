from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from clientarea.core.validators import validate_single_line

from . import names
from .models import Domain

NAMESERVER_FIELDS = [f"ns{i}" for i in range(1, names.MAX_NAMESERVERS + 1)]


class NameserverForm(forms.Form):
    """Two to five nameservers; every error names its field ("Nameserver 3: ...")."""

    def __init__(self, *args: Any, initial_nameservers: list[str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        current = initial_nameservers or []
        for index, field_name in enumerate(NAMESERVER_FIELDS):
            position = index + 1
            self.fields[field_name] = forms.CharField(
                label=f"Nameserver {position}",
                required=False,
                max_length=300,
                validators=[validate_single_line],
                initial=names.to_unicode(current[index]) if index < len(current) else "",
                widget=forms.TextInput(
                    attrs={
                        "autocomplete": "off",
                        "spellcheck": "false",
                        "placeholder": f"ns{position}.example.com",
                    }
                ),
                error_messages={"max_length": f"Nameserver {position}: the name is too long."},
            )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        values = [data.get(name) or "" for name in NAMESERVER_FIELDS]
        try:
            data["nameservers"] = names.nameservers_validate(values)
        except ValidationError as exc:
            self.add_error(None, exc)
        return data


class ToggleForm(forms.Form):
    """The new value of an on/off setting, sent explicitly so a repeated POST is harmless."""

    enabled = forms.TypedChoiceField(
        choices=[("on", "on"), ("off", "off")], coerce=lambda v: v == "on"
    )


class StatusFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "All statuses"), *Domain.Status.choices], required=False
    )


class RenewForm(forms.Form):
    """The renewal period: only the periods staff priced for the domain are offered; any
    other value (a forged one) is an error on the form."""

    years = forms.TypedChoiceField(
        label="Renewal period", coerce=int, widget=forms.RadioSelect, choices=[]
    )

    def __init__(self, *args: Any, periods: list[tuple[int, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["years"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [(str(years), label) for years, label in periods]
        field.error_messages["invalid_choice"] = "Choose one of the periods offered."
        if periods:
            field.initial = str(periods[0][0])
