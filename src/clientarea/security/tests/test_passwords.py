"""Password rules after NIST SP 800-63B rev. 4."""

from __future__ import annotations

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from clientarea.accounts.tests.factories import UserFactory

from .factories import two_factor_on

pytestmark = pytest.mark.django_db


def _errors(password: str, user: object = None) -> list[str]:
    try:
        validate_password(password, user)
    except ValidationError as exc:
        return list(exc.messages)
    return []


def test_at_least_15_characters_without_two_factor() -> None:
    """ASVS 6.2.1 (NIST rev. 4): 15 characters minimum for single-factor users."""
    user = UserFactory()
    assert _errors("fourteen chars", user)  # 14
    assert _errors("fifteen chars!!", user) == []


def test_8_characters_are_enough_with_two_factor() -> None:
    """ASVS 6.2.1: 8 characters minimum when the password is one of two factors."""
    user = UserFactory()
    two_factor_on(user)
    assert _errors("kq7-zp2!", user) == []
    assert _errors("kq7-zp2", user)


def test_long_passphrases_are_accepted() -> None:
    """ASVS 6.2.9: at least 64 characters allowed (here up to 1024)."""
    user = UserFactory()
    assert _errors("correct horse battery staple " * 3, user) == []  # 87 characters
    assert _errors("x7" * 100, user) == []
    assert _errors("y" * 1025, user)


@given(st.text(alphabet="abcdefghij klmnop", min_size=15, max_size=80).filter(str.strip))
@settings(max_examples=40, deadline=None)
def test_no_composition_rules(password: str) -> None:
    """ASVS 6.2.5: no rules on character types (only letters and spaces pass)."""
    errors = _errors(password)
    assert not any("character" in e and "least" not in e for e in errors)
    assert all("common" in e or "similar" in e for e in errors)


def test_common_and_breached_passwords_are_refused() -> None:
    """ASVS 6.2.4 / 6.2.12: checked against a shipped list, no network call."""
    user = UserFactory()
    two_factor_on(user)
    assert any("too common" in e for e in _errors("password1", user))
    assert any("too common" in e for e in _errors("qwertyuiop", user))


def test_all_digit_passwords_are_allowed_when_long_enough() -> None:
    """ASVS 6.2.5: no composition rules - Django's numeric-only check is not used."""
    assert _errors("418273645091827364") == []


def test_passwords_made_of_the_site_name_or_the_email_are_refused() -> None:
    """Context words: the site's name and the parts of the person's email address."""
    user = UserFactory(email="olivia.smith@acme-studio.ie")
    for guessable in (
        "Jiinubi-Jiinubi-2026",
        "olivia.smith@acme-studio.ie",
        "OliviaSmith-Acme-1984!",
        "acme studio olivia 2026",
    ):
        assert any("mostly made of" in e for e in _errors(guessable, user)), guessable
    # A phrase that merely mentions one of them is fine.
    assert _errors("olivia plants purple tomatoes", user) == []


def test_breached_passwords_from_the_large_list_are_refused() -> None:
    """Beyond Django's 20,000 common passwords: the bundled breached list (millions)."""
    user = UserFactory()
    for breached in ("passwordpassword", "PasswordPassword", "iloveyouiloveyou"):
        assert any("breached" in e for e in _errors(breached, user)), breached
    assert _errors("granite kettle orbit lantern", user) == []
