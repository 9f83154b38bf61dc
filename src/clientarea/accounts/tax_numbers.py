"""The account's VAT or tax number, printed on its invoices.

For an account in an EU member state it must be a VAT number: the member state's prefix
(EL for Greece, XI for Northern Ireland) and the national number, checked offline with
python-stdnum (format, length and check digits per member state; whether the number is
registered is VIES's answer, not checked here). Typed without the prefix, the account's
own country's is assumed. It is stored compact: "IE 6388047V" is kept as "IE6388047V".

Elsewhere the tax authorities' formats are too many to check: any tax identifier of
letters, digits and the usual separators is kept as typed (spaces collapsed).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django_countries import countries
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import (
    InvalidChecksum,
    InvalidComponent,
    InvalidFormat,
    InvalidLength,
)
from stdnum.exceptions import ValidationError as NumberInvalid

from clientarea.core.validators import validate_single_line

MAX_LENGTH = 40

# Country code -> VAT prefix, for the EU member states (Greece's prefix is EL).
EU_VAT_PREFIXES = {
    code.upper(): ("EL" if code == "gr" else code.upper())
    for code in eu_vat.MEMBER_STATES
    if code != "xi"  # Northern Ireland: a prefix, not a country (it is GB)
}
PREFIX_NAMES = {
    **{prefix: str(countries.name(code)) for code, prefix in EU_VAT_PREFIXES.items()},
    "XI": "Northern Ireland",
}
FREE_SEPARATORS = frozenset(" -./&")


def is_eu_country(country: str) -> bool:
    return str(country).upper() in EU_VAT_PREFIXES


def tax_number_clean(value: str, *, country: str) -> str:
    """The tax number to store for an account in ``country`` (an ISO code), compact;
    ``ValidationError`` with a message for the person who typed it. Empty stays empty."""
    validate_single_line(value)  # a line break is refused, not folded into a space
    value = " ".join((value or "").split())
    if not value:
        return ""
    if len(value) > MAX_LENGTH:
        raise ValidationError(f"Enter at most {MAX_LENGTH} characters.")
    if is_eu_country(country):
        return _eu_vat_number(value, own_prefix=EU_VAT_PREFIXES[str(country).upper()])
    if not all(ch.isalnum() or ch in FREE_SEPARATORS for ch in value) or not any(
        ch.isdigit() for ch in value
    ):
        raise ValidationError(
            "Enter the tax number as your tax authority writes it: letters and digits, "
            "with spaces, hyphens, dots or slashes if it has them."
        )
    return value


def _eu_vat_number(value: str, *, own_prefix: str) -> str:
    compact = "".join(ch for ch in value.upper() if ch not in " -./")
    given = compact[:2] if compact[:2] in PREFIX_NAMES or compact[:2] == "GR" else ""
    if given == "GR":  # Greece's ISO code, not its VAT prefix
        compact, given = "EL" + compact[2:], "EL"
    attempts = [compact] if given else []
    if given != own_prefix:
        attempts.append(own_prefix + compact)  # typed without the prefix
    first_error: NumberInvalid | None = None
    for number in attempts:
        try:
            valid = eu_vat.validate(number)
        except NumberInvalid as exc:
            first_error = first_error or exc
            continue
        return "EL" + valid[2:] if valid.startswith("GR") else valid
    if compact[:2].isalpha() and not given:
        raise ValidationError(
            f"{compact[:2]} is not the prefix of an EU member state: enter the VAT number "
            f"with its member state's prefix ({own_prefix} for {PREFIX_NAMES[own_prefix]}), "
            "or leave the field empty."
        )
    state = PREFIX_NAMES[given or own_prefix]
    if isinstance(first_error, InvalidLength):
        reason = f"it has the wrong number of characters for a VAT number of {state}"
    elif isinstance(first_error, InvalidChecksum):
        reason = "its check digits do not match (a typing mistake?)"
    elif isinstance(first_error, InvalidFormat | InvalidComponent):
        reason = f"it is not in the format of a VAT number of {state}"
    else:
        reason = f"it is not a valid VAT number of {state}"
    raise ValidationError(
        f"This VAT number is not valid: {reason}. Enter it as on your VAT registration, "
        "or leave the field empty."
    )
