"""Validators for text that people type: one-line fields and multi-line text.

A one-line field (a name, a company, an address line, a subject, a phone number) ends up in
email headers, PDFs, CSV exports and log lines, where a line break or a control character
breaks the format or forges a new line: a carriage return in a company name made every
email whose subject names the account fail. So one-line fields refuse:

- every control character (Unicode category Cc: C0, DEL, C1), line breaks included;
- the line and paragraph separators U+2028 and U+2029;
- format characters (category Cf): invisible characters such as the right-to-left override
  U+202E that makes text read differently from what it is, zero-width spaces, the byte
  order mark; except the zero-width non-joiner and joiner (U+200C, U+200D), which
  Persian, Arabic and Indic scripts need to spell words correctly (and emoji use);
- lone surrogates (category Cs), which no encoding can store (JSON can carry them).

Multi-line text (a ticket message, invoice notes) keeps its tabs and line breaks but
refuses the other control characters and lone surrogates.

Use them as model field validators, so ModelForms and the back office get them, on plain
form fields, and in services through ``fields_check`` (a caller that skips the form, such
as the API, cannot store what the form refuses).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.text import capfirst

SINGLE_LINE_MESSAGE = "Remove the line break or control character from this field."
MULTI_LINE_MESSAGE = "Remove the control character from this text."
CODE = "control_character"

JOINERS = frozenset("\u200c\u200d")
LINE_SEPARATORS = frozenset("\u2028\u2029")
TEXT_CONTROLS = frozenset("\t\n\r")


def is_refused_in_single_line(ch: str) -> bool:
    category = unicodedata.category(ch)
    if category in ("Cc", "Cs") or ch in LINE_SEPARATORS:
        return True
    return category == "Cf" and ch not in JOINERS


def is_refused_in_multi_line(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category == "Cs" or (category == "Cc" and ch not in TEXT_CONTROLS)


def validate_single_line(value: Any) -> None:
    """Refuse line breaks, control and invisible format characters (see the module)."""
    if isinstance(value, str) and any(is_refused_in_single_line(ch) for ch in value):
        raise ValidationError(SINGLE_LINE_MESSAGE, code=CODE)


def validate_multi_line(value: Any) -> None:
    """Refuse control characters other than tab and line breaks (NUL, ESC, DEL, ...)."""
    if isinstance(value, str) and any(is_refused_in_multi_line(ch) for ch in value):
        raise ValidationError(MULTI_LINE_MESSAGE, code=CODE)


def fields_check(
    model: type[models.Model],
    values: Mapping[str, Any],
    error: Callable[[str], Exception] | None = None,
) -> None:
    """Check values a service is about to store against the rules of the model's fields
    (these validators, the maximum length, required, choices), as a ModelForm would.
    Raises ``ValidationError`` with the messages per field or, given ``error`` (a
    service's own error type), that error with one readable message ("Name: Remove the
    line break ..."); stores nothing."""
    errors: dict[str, list[str]] = {}
    labels: list[str] = []
    for name, value in values.items():
        field = model._meta.get_field(name)
        assert isinstance(field, models.Field), name
        try:
            field.clean(value, None)
        except ValidationError as exc:
            errors[name] = exc.messages
            labels.append(f"{capfirst(str(field.verbose_name))}: {' '.join(exc.messages)}")
    if not errors:
        return
    if error is None:
        raise ValidationError(errors)
    raise error(" ".join(labels))


def time_zone_names() -> frozenset[str]:
    """The IANA time zones this system knows (zoneinfo)."""
    import zoneinfo

    return frozenset(zoneinfo.available_timezones())


def validate_time_zone(value: str) -> None:
    """An IANA time zone name known to zoneinfo, such as Europe/Dublin or UTC."""
    from django.core.exceptions import ValidationError

    if value not in time_zone_names():
        raise ValidationError("Choose a time zone from the list, such as Europe/Dublin.")
