"""A logging filter that keeps tokens out of the logs (ASVS 16.2.5).

Django logs the path of every 4xx/5xx request ("Not Found: /invite/<token>/"); paths
that carry a secret (invitation, password-reset and email-change links) are rewritten
before any handler sees them."""

from __future__ import annotations

import logging
import re

_SECRET_PATHS = re.compile(
    r"(/(?:invite|invitation|password-reset|security/email/confirm)/)(?!sent/|done/)[^\s\"'?]+"
)


def redact(text: str) -> str:
    return _SECRET_PATHS.sub(r"\1[redacted]", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
