"""Domain and host names: IDN conversion and nameserver validation.

Names are stored in ASCII (IDNA 2008 with UTS #46 mapping, i.e. punycode ``xn--`` labels),
lower-cased and without a trailing dot, and shown in Unicode.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

import idna
from django.core.exceptions import ValidationError

MIN_NAMESERVERS = 2
MAX_NAMESERVERS = 5
MAX_NAME_LENGTH = 253
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class InvalidName(ValueError):
    """A name that is not acceptable; the message says why, for a person to read."""


def _looks_like_ip(value: str) -> bool:
    candidate = value.strip("[]")
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


def to_ascii(name: str, *, min_labels: int = 2) -> str:
    """`name` (Unicode or ASCII) as a lower-case ASCII host name, or InvalidName saying why."""
    value = name.strip()
    if not value:
        raise InvalidName("is empty")
    if value.endswith(".") and not value.endswith(".."):
        value = value[:-1]  # a fully qualified name's root dot changes nothing
    if _looks_like_ip(value):
        raise InvalidName(f"{value} is an IP address; enter a host name such as ns1.example.com")
    if any(c.isspace() for c in value):
        raise InvalidName("contains a space")
    try:
        ascii_name = idna.encode(value, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidName(f"{value} is not a valid host name ({_idna_reason(exc)})") from exc
    except UnicodeError as exc:
        raise InvalidName(f"{value} is not a valid host name") from exc
    ascii_name = ascii_name.lower()
    labels = ascii_name.split(".")
    if len(ascii_name) > MAX_NAME_LENGTH:
        raise InvalidName(f"is longer than {MAX_NAME_LENGTH} characters")
    for label in labels:
        if not label:
            raise InvalidName(f"{value} has an empty part between dots")
        if not _LABEL.match(label):
            raise InvalidName(
                f"{value} is not a valid host name: each part may hold only letters, digits "
                "and hyphens, and may not start or end with a hyphen"
            )
    if len(labels) < min_labels:
        raise InvalidName(f"{value} is not a full host name such as ns1.example.com")
    if labels[-1].isdigit():
        raise InvalidName(f"{value} ends in a number; it is not a host name")
    return ascii_name


def _idna_reason(exc: Exception) -> str:
    text = str(exc)
    if "too long" in text.lower():
        return "a part is too long"
    if "codepoint" in text.lower():
        return "it contains a character that is not allowed in host names"
    if "hyphen" in text.lower():
        return "a part starts or ends with a hyphen, or has two in 3rd and 4th place"
    return "it is not a valid internationalised name"


def to_unicode(ascii_name: str) -> str:
    """The name as people read it; the ASCII form if it cannot be decoded."""
    try:
        return idna.decode(ascii_name)
    except (idna.IDNAError, UnicodeError):
        return ascii_name


def domain_name_normalise(name: str) -> str:
    """A domain name for storage: ASCII, lower-case, no trailing dot."""
    return to_ascii(name, min_labels=2)


def nameserver_normalise(value: str) -> str:
    return to_ascii(value, min_labels=2)


def nameservers_validate(values: Sequence[str]) -> list[str]:
    """Validate the nameserver entries of a form, in order (blanks are skipped).

    Returns the normalised list (2 to 5 host names), or raises ValidationError whose
    dict maps ``ns1``..``ns5`` (and ``__all__``) to messages naming the field: every
    message reads "Nameserver N: <reason>"."""
    if len(values) > MAX_NAMESERVERS:
        raise ValidationError({"__all__": [f"Enter at most {MAX_NAMESERVERS} nameservers."]})
    errors: dict[str, list[str]] = {}
    result: list[str] = []
    seen: dict[str, int] = {}
    for position, raw in enumerate(values, start=1):
        if not (raw or "").strip():
            continue
        try:
            name = nameserver_normalise(raw)
        except InvalidName as exc:
            errors[f"ns{position}"] = [f"Nameserver {position}: {exc}."]
            continue
        if name in seen:
            errors[f"ns{position}"] = [
                f"Nameserver {position}: {to_unicode(name)} is already "
                f"nameserver {seen[name]}; each nameserver may appear only once."
            ]
            continue
        seen[name] = position
        result.append(name)
    if not errors and len(result) < MIN_NAMESERVERS:
        missing = next(
            (
                i
                for i in range(1, MIN_NAMESERVERS + 1)
                if i > len(values) or not values[i - 1].strip()
            ),
            1,
        )
        errors[f"ns{missing}"] = [
            f"Nameserver {missing}: enter a host name; a domain needs at least "
            f"{MIN_NAMESERVERS} nameservers."
        ]
    if errors:
        raise ValidationError(errors)
    return result
