"""One-line fields refuse line breaks and control characters; multi-line text keeps its
line breaks and tabs but refuses the other control characters."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from clientarea.accounts.models import Account
from clientarea.core.validators import (
    MULTI_LINE_MESSAGE,
    SINGLE_LINE_MESSAGE,
    fields_check,
    validate_multi_line,
    validate_single_line,
)

REFUSED_IN_ONE_LINE = {
    "carriage return": "Acme\rLtd",
    "line feed": "Acme\nBcc: victim@example.com",
    "CRLF": "Acme\r\nLtd",
    "tab": "Acme\tLtd",
    "NUL": "Acme\x00Ltd",
    "escape": "Acme\x1b[31mLtd",
    "DEL": "Acme\x7fLtd",
    "C1 next line": "Acme\x85Ltd",
    "line separator": "Acme\u2028Ltd",
    "paragraph separator": "Acme\u2029Ltd",
    "right-to-left override": "Invoice \u202efdp.exe",
    "left-to-right isolate": "Acme\u2066Ltd",
    "zero-width space": "Ac\u200bme",
    "byte order mark": "\ufeffAcme",
    "lone surrogate": "Acme\ud800",
}
ACCEPTED_IN_ONE_LINE = {
    "plain": "Acme Web Studio Ltd.",
    "accents": "Café Müller & Søn",
    "CJK": "株式会社アクメ",
    "right-to-left script": "شركة أكمي",
    "Persian with a zero-width non-joiner": "می\u200cخواهم",  # noqa: RUF001 - real Persian letters
    "emoji with a zero-width joiner": "\U0001f469\u200d\U0001f4bb Dev Shop",
    "no-break space": "Acme\u00a0Ltd",
    "empty": "",
}


@pytest.mark.parametrize("value", REFUSED_IN_ONE_LINE.values(), ids=REFUSED_IN_ONE_LINE)
def test_one_line_fields_refuse_line_breaks_and_control_characters(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_single_line(value)
    assert caught.value.messages == [SINGLE_LINE_MESSAGE]


@pytest.mark.parametrize("value", ACCEPTED_IN_ONE_LINE.values(), ids=ACCEPTED_IN_ONE_LINE)
def test_one_line_fields_accept_every_script(value: str) -> None:
    validate_single_line(value)


@pytest.mark.parametrize(
    "value", ["Line one\nLine two", "Windows\r\nlines", "a\ttab", "\u2028 separator", "ok"]
)
def test_multi_line_text_keeps_line_breaks_and_tabs(value: str) -> None:
    validate_multi_line(value)


@pytest.mark.parametrize(
    "value", ["NUL\x00here", "escape \x1b[2J", "bell\x07", "DEL\x7f", "C1\x9b", "lone \udfff"]
)
def test_multi_line_text_refuses_other_control_characters(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_multi_line(value)
    assert caught.value.messages == [MULTI_LINE_MESSAGE]


def test_fields_check_applies_the_model_fields_rules_by_field() -> None:
    with pytest.raises(ValidationError) as caught:
        fields_check(Account, {"company_name": "Acme\rLtd", "city": "x" * 101, "postcode": "D02"})
    assert caught.value.message_dict == {
        "company_name": [SINGLE_LINE_MESSAGE],
        "city": ["Ensure this value has at most 100 characters (it has 101)."],
    }
    fields_check(Account, {"company_name": "Acme Ltd", "country": "IE"})


@pytest.mark.django_db
def test_model_validation_refuses_a_line_break_in_the_company_name(account: Account) -> None:
    """What ModelForms and the back office run."""
    account.company_name = "Acme\r\nLtd"
    with pytest.raises(ValidationError) as caught:
        account.full_clean()
    assert caught.value.message_dict["company_name"] == [SINGLE_LINE_MESSAGE]
