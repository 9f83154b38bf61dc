"""Forms of User Management, invitations and secondary contacts."""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from django import forms
from django.contrib.auth.password_validation import validate_password
from django.utils import timezone

from clientarea.core.validators import validate_single_line

from . import permissions
from .models import Account, Contact, Membership, User, normalize_email
from .scope import SCOPE_KINDS, Scope
from .services import CONTACT_IS_OWNER, CONTACT_NO_KINDS

ALL = "all"
CHOOSE = "choose"
SCOPE_ALL = "all"
SCOPE_ONLY = "only"
SCOPE_HELP = (
    "Invoices, contacts and the account profile are account-wide: this choice has no "
    "effect on them."
)


def scope_field_name(kind: str) -> str:
    return f"scope_{kind}"


class PermissionCheckboxes(forms.CheckboxSelectMultiple):
    """One checkbox per catalogue permission, with its label and one-line help text."""

    option_template_name = "accounts/widgets/permission_option.html"

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        entry = permissions.BY_CODE.get(str(option["value"]))
        option["help_text"] = entry.help_text if entry else ""
        return option


MAX_ACCESS_PERIOD = timedelta(days=3653)  # about 10 years; date.max would overflow


def owner_zone(account: Account | None) -> tzinfo:
    """The account owner's time zone (Profile); the active zone without an account."""
    name = account.owner.time_zone if account is not None else ""
    try:
        return zoneinfo.ZoneInfo(name) if name else timezone.get_current_timezone()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_current_timezone()


def _end_of_day(day: date, zone: tzinfo | None = None) -> datetime:
    """Access lasts to the end of the chosen day in the owner's time zone (the active zone
    when none is given): the instant the next day begins there."""
    return timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min), zone)


class PermissionsForm(forms.Form):
    access = forms.ChoiceField(
        label="Permissions",
        choices=[(ALL, "All Permissions"), (CHOOSE, "Choose Permissions")],
        widget=forms.RadioSelect,
        initial=CHOOSE,
    )
    permissions = forms.MultipleChoiceField(
        label="Choose Permissions",
        choices=permissions.choices,
        widget=PermissionCheckboxes,
        required=False,
    )
    scope_mode = forms.ChoiceField(
        label="Services and domains",
        choices=[(SCOPE_ALL, "All services and domains"), (SCOPE_ONLY, "Only these")],
        widget=forms.RadioSelect,
        initial=SCOPE_ALL,
        required=False,
        help_text=SCOPE_HELP,
    )
    access_expires_on = forms.DateField(
        label="Access expires on (optional)",
        required=False,
        # A date input only accepts (and shows) ISO dates: the locale's "31/01/2027" would
        # show as empty and be posted back empty, dropping the expiry on save.
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="Access ends at the end of this day. Leave empty for no expiry.",
    )
    leading_fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, account: Account | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.account = account
        # "Only these": one list of checkboxes per kind the domain apps registered (the
        # account's services, its domains). Anything else posted is refused by the field.
        for kind in SCOPE_KINDS.values():
            label = kind.label.lower()
            self.fields[scope_field_name(kind.name)] = forms.TypedMultipleChoiceField(
                label=f"Only these {label}",
                choices=[(str(pk), text) for pk, text in kind.choices(account)]
                if account is not None
                else [],
                coerce=int,
                widget=forms.CheckboxSelectMultiple,
                required=False,
                error_messages={
                    "invalid_choice": f"Choose only {label} of this account; "
                    "%(value)s is not one of them."
                },
                help_text=f"Used with Only these: the {label} this person may see and manage.",
            )
        self.order_fields(
            [
                *self.leading_fields,
                "access",
                "permissions",
                "scope_mode",
                *(scope_field_name(k) for k in SCOPE_KINDS),
                "access_expires_on",
            ]
        )

    def clean_access_expires_on(self) -> date | None:
        day: date | None = self.cleaned_data.get("access_expires_on")
        today = timezone.localdate(timezone=owner_zone(self.account))
        if day is not None and day < today:
            raise forms.ValidationError("Choose today or a later date.")
        if day is not None and day > today + MAX_ACCESS_PERIOD:
            raise forms.ValidationError(
                "Choose a date within the next 10 years, or leave it empty for no expiry."
            )
        return day

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("access") == ALL:
            data["permissions"] = sorted(permissions.ALL_CODES)
        elif data.get("access") == CHOOSE and not data.get("permissions"):
            self.add_error("permissions", "Choose at least one permission, or All Permissions.")
        if data.get("scope_mode") == SCOPE_ONLY and not any(
            data.get(scope_field_name(k)) for k in SCOPE_KINDS
        ):
            self.add_error(
                "scope_mode",
                "Tick at least one service or domain, or choose All services and domains.",
            )
        return data

    @property
    def scope(self) -> Scope | None:
        """None (all services and domains) or the ticked ids of each kind."""
        if self.cleaned_data.get("scope_mode") != SCOPE_ONLY:
            return None
        return {k: frozenset(self.cleaned_data.get(scope_field_name(k)) or ()) for k in SCOPE_KINDS}

    @property
    def permission_codes(self) -> list[str]:
        return permissions.normalise(self.cleaned_data["permissions"])

    @property
    def access_expires_at(self) -> datetime | None:
        day = self.cleaned_data.get("access_expires_on")
        return _end_of_day(day, owner_zone(self.account)) if day else None

    @staticmethod
    def initial_for(
        codes: Any,
        expires_at: datetime | None = None,
        scope: Scope | None = None,
        zone: tzinfo | None = None,
    ) -> dict[str, Any]:
        granted = permissions.expand(codes)
        initial: dict[str, Any] = {
            "access": ALL if permissions.is_all(granted) else CHOOSE,
            "permissions": sorted(granted),
            "access_expires_on": (
                timezone.localdate(expires_at - timedelta(seconds=1), zone) if expires_at else None
            ),
            "scope_mode": SCOPE_ALL if scope is None else SCOPE_ONLY,
        }
        for kind in SCOPE_KINDS:
            initial[scope_field_name(kind)] = sorted((scope or {}).get(kind, ()))
        return initial


class InviteForm(PermissionsForm):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        help_text="The person you invite logs in with this address and their own password.",
        widget=forms.EmailInput(attrs={"autocomplete": "off", "autofocus": True}),
    )
    leading_fields = ("email",)


class MembershipForm(PermissionsForm):
    @classmethod
    def for_membership(cls, membership: Membership, data: Any = None) -> MembershipForm:
        return cls(
            data,
            account=membership.account,
            initial=cls.initial_for(
                membership.permissions,
                membership.expires_at,
                membership.scope_items,
                owner_zone(membership.account),
            ),
        )


class AcceptNewUserForm(forms.Form):
    """A person new to the site: name and a password (Django's validators)."""

    first_name = forms.CharField(
        label="First name", max_length=150, validators=[validate_single_line]
    )
    last_name = forms.CharField(
        label="Last name", max_length=150, required=False, validators=[validate_single_line]
    )
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 15 characters (a phrase works well); not a common password.",
    )
    password2 = forms.CharField(
        label="Password (again)",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, email: str, *args: Any, **kwargs: Any) -> None:
        self.email = email
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords do not match.")
        elif p1:
            candidate = User(
                email=self.email,
                first_name=data.get("first_name", ""),
                last_name=data.get("last_name", ""),
            )
            try:
                validate_password(p1, user=candidate)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


PHONE_RE = re.compile(r"^\+?[0-9 ()\-./]{5,30}$")


class ContactKindCheckboxes(forms.CheckboxSelectMultiple):
    """The kinds a contact can receive; the ones outside the editor's own grant are shown
    but cannot be changed (the service refuses them too)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.locked: frozenset[str] = frozenset()

    def create_option(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        option = super().create_option(*args, **kwargs)
        if str(option["value"]) in self.locked:
            option["attrs"]["disabled"] = True
        return option


class ContactForm(forms.ModelForm):
    email_kinds = forms.MultipleChoiceField(
        label="Emails they receive",
        choices=Contact.Kind.choices,
        widget=ContactKindCheckboxes,
        required=False,
        help_text="The owner receives the kinds they chose in Emails You Receive. The "
        "address receives "
        "nothing until its holder confirms it from the link we email them.",
    )

    class Meta:
        model = Contact
        fields = ["name", "email", "phone", "email_kinds"]

    def __init__(
        self,
        *args: Any,
        account_id: int,
        grantable_kinds: frozenset[str] | None = None,
        **kwargs: Any,
    ) -> None:
        self.account_id = account_id
        super().__init__(*args, **kwargs)
        all_kinds = frozenset(Contact.Kind.values)
        self.grantable_kinds = all_kinds if grantable_kinds is None else grantable_kinds
        locked = all_kinds - self.grantable_kinds
        if locked:
            field = self.fields["email_kinds"]
            assert isinstance(field.widget, ContactKindCheckboxes)
            field.widget.locked = locked
            field.help_text = (
                "You can choose only the emails you can read yourself; the others stay as "
                "the account owner set them. " + str(field.help_text)
            )

    def clean_email_kinds(self) -> list[str]:
        chosen = set(self.cleaned_data.get("email_kinds") or [])
        current = set(self.instance.email_kinds or []) if self.instance.pk else set()
        refused = chosen - self.grantable_kinds - current
        if refused:
            labels = dict(Contact.Kind.choices)
            names = ", ".join(str(labels[k]) for k in Contact.Kind.values if k in refused)
            raise forms.ValidationError(
                f"You can only choose emails you can read yourself; {names} is not part of "
                "your access."
            )
        return [k for k in Contact.Kind.values if k in chosen]

    def clean_phone(self) -> str:
        phone: str = self.cleaned_data.get("phone", "").strip()
        if phone and not PHONE_RE.match(phone):
            raise forms.ValidationError("Enter a phone number such as +353 21 123 4567.")
        return phone

    def clean_email(self) -> str:
        email = normalize_email(self.cleaned_data["email"])
        others = Contact.objects.filter(account_id=self.account_id, email__iexact=email)
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError("This address is already one of the account's contacts.")
        if Account.objects.filter(pk=self.account_id, owner__email__iexact=email).exists():
            raise forms.ValidationError(CONTACT_IS_OWNER)
        return email

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "email_kinds" in cleaned:
            current = set(self.instance.email_kinds or []) if self.instance.pk else set()
            kept = current - self.grantable_kinds  # boxes this person cannot untick
            if not (set(cleaned["email_kinds"]) | kept):
                self.add_error("email_kinds", CONTACT_NO_KINDS)
        return cleaned
