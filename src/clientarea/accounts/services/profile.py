"""Users and accounts: creating them, and changing their details (the account's
profile, a person's name and time zone)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest

from clientarea.audit.services import audit_record
from clientarea.core.validators import fields_check

from .. import permissions
from ..models import Account, User, normalize_email
from ..policy import Access
from ..tax_numbers import tax_number_clean
from ._common import _access_checked, _acting


def user_create(
    *,
    email: str,
    password: str | None,
    first_name: str,
    last_name: str = "",
    is_staff: bool = False,
) -> User:
    """Refused (``ValidationError``, by field) for a name the form would refuse: a line
    break or a control character, too long, or no first name."""
    fields_check(User, {"first_name": first_name, "last_name": last_name})
    return User.objects.create_user(
        email=normalize_email(email),
        password=password,
        first_name=first_name,
        last_name=last_name,
        is_staff=is_staff,
    )


@transaction.atomic
def account_create(
    *,
    owner: User,
    company_name: str = "",
    country: str = "IE",
    currency: str = "EUR",
    address_line1: str = "",
    address_line2: str = "",
    city: str = "",
    postcode: str = "",
    tax_number: str = "",
    credit_balance: Decimal = Decimal("0.00"),
    actor: User | None = None,
) -> Account:
    text = {
        "company_name": company_name,
        "country": country.upper(),
        "currency": currency.upper(),
        "address_line1": address_line1,
        "address_line2": address_line2,
        "city": city,
        "postcode": postcode,
        "tax_number": tax_number,
    }
    fields_check(Account, text)  # ValidationError, by field, for what a form would refuse
    try:
        text["tax_number"] = tax_number_clean(tax_number, country=text["country"])
    except ValidationError as exc:
        raise ValidationError({"tax_number": exc.messages}) from exc
    account = Account.objects.create(owner=owner, credit_balance=credit_balance, **text)
    audit_record(
        action="account.created",
        actor=actor,
        account=account,
        target=account,
        is_staff_action=bool(actor and actor.is_staff),
    )
    return account


PROFILE_FIELDS = (
    "company_name",
    "address_line1",
    "address_line2",
    "city",
    "postcode",
    "country",
    "tax_number",
)


@transaction.atomic
def account_update_profile(
    *,
    account: Account,
    data: dict[str, Any],
    access: Access | None = None,
    actor: User | None = None,
    request: HttpRequest | None = None,
) -> Account:
    """Change the account's profile for the person of `access` (or `actor`'s whole
    access), who must hold `profile` on that account now, whatever the caller checked:
    another account or an ended access is ``AccessOutOfReach`` (404), no `profile` is
    ``AccessNotPermitted`` (403), both ``AccessError``. Refused (``ValidationError``, by
    field, nothing saved) for a value the form would refuse: a line break or a control
    character in a one-line field, too long, a VAT number that is not one (checked
    against the country it will have), ..."""
    acting = _access_checked(
        _acting(access, actor, account.pk),
        account,
        noun="account",
        perm=permissions.Perm.PROFILE,
        refusal="You do not have permission to modify the account details.",
    )
    actor = acting.user
    fields_check(Account, {f: data[f] for f in PROFILE_FIELDS if f in data})
    if "tax_number" in data or "country" in data:
        try:
            tax_number = tax_number_clean(
                data.get("tax_number", account.tax_number),
                country=str(data.get("country") or account.country),
            )
        except ValidationError as exc:
            raise ValidationError({"tax_number": exc.messages}) from exc
        data = {**data, "tax_number": tax_number}
    changes = {}
    for field in PROFILE_FIELDS:
        current = str(getattr(account, field))  # the country is a Country: its code
        if field in data and current != data[field]:
            changes[field] = [current, data[field]]
            setattr(account, field, data[field])
    if changes:
        account.save(update_fields=list(changes))
        audit_record(
            action="account.profile_changed",
            actor=actor,
            account=account,
            target=account,
            changes=changes,
            request=request,
        )
    return account


@transaction.atomic
def user_update_profile(
    *,
    user: User,
    first_name: str,
    last_name: str,
    time_zone: str | None = None,
    request: HttpRequest | None = None,
) -> User:
    """Refused (``ValidationError``, by field, nothing saved) for a name the form would
    refuse: a line break or a control character, too long, or no first name; or a time
    zone zoneinfo does not know. ``time_zone=None`` keeps the current one."""
    time_zone = user.time_zone if time_zone is None else time_zone
    fields_check(User, {"first_name": first_name, "last_name": last_name, "time_zone": time_zone})
    changes = {}
    if user.first_name != first_name:
        changes["first_name"] = [user.first_name, first_name]
    if user.last_name != last_name:
        changes["last_name"] = [user.last_name, last_name]
    if user.time_zone != time_zone:
        changes["time_zone"] = [user.time_zone, time_zone]
    if changes:
        user.first_name, user.last_name, user.time_zone = first_name, last_name, time_zone
        user.save(update_fields=["first_name", "last_name", "time_zone"])
        audit_record(
            action="user.profile_changed", actor=user, target=user, changes=changes, request=request
        )
    return user
