"""Password length rules after NIST SP 800-63B rev. 4 (ASVS 6.2.1, 6.2.9).

At least 15 characters, or 8 for a user who has two-factor authentication; long
passphrases (up to ``max_length``, default 1024) are always accepted; no composition
rules. The list of common and breached passwords is Django's ``CommonPasswordValidator``
(20,000 entries shipped with Django, no network call).
"""

from __future__ import annotations

from typing import Any

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
