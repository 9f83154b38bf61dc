"""Keeping tokens out of every log (ASVS 16.2.5).

Links sent by email carry a secret in their path: invitations, password resets, email
changes and contact confirmations. The first request of such a link is logged by every
server in front of the view (Django's ``runserver`` access log, gunicorn's access log,
``django.request``'s "Not Found: …"), so each of them rewrites the secret to
``[redacted]``:

- ``SECRET_PATH_PREFIXES`` is the one list of those paths; ``headers.py`` reads it too
  (strict-origin referrers and no-store on the same pages).
- ``redact()`` rewrites the part of a path after such a prefix, whether plain or
  percent-encoded (a ``?next=%2Finvitation%2F…`` login link), the whole query string of
  such a path and of the card sandbox's tokenizer (``SECRET_QUERY_PATH_PREFIXES``), and
  the value of any query parameter whose name says it is a secret (``?token=…``).
- ``RedactSecretsFilter`` is on every handler of the settings' ``LOGGING``;
  ``configure_logging`` (the ``LOGGING_CONFIG`` callable) also installs a log-record
  factory, so a record is clean from the moment it is made, whatever handler (a test's,
  a monitoring agent's) later reads it.
- ``clientarea.security.gunicorn_logger.RedactingLogger`` does the same for gunicorn's
  access and error logs (``src/config/gunicorn.conf.py``)."""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any

SECRET_PATH_PREFIXES: tuple[str, ...] = (
    "/invite/",
    "/invitation/",
    "/password-reset/",
    "/security/email/confirm/",
    "/contacts/confirm/",
    "/ownership/",
)
# Token-less pages under those prefixes keep their names in the logs.
_PUBLIC_TAILS = ("sent", "done", "accept")
# Paths whose whole query string is withheld from the logs, whatever its parameters are
# named: every token path (a link with a token may carry more than the token), and the
# card sandbox's tokenizer (what a card is made of goes in, a card token comes out).
SECRET_QUERY_PATH_PREFIXES: tuple[str, ...] = (*SECRET_PATH_PREFIXES, "/billing/sandbox/tokens/")
# Query parameters whose value is a secret, wherever they appear.
_SECRET_PARAMS = r"[\w.\-]*(?:token|secret|password|passwd|signature|sig|key|code)[\w.\-]*"

REDACTED = "[redacted]"


def _slash_or_encoded(prefix: str) -> str:
    return "".join("(?:/|%2[fF])" if c == "/" else re.escape(c) for c in prefix)


_SECRET_PATHS = re.compile(
    "(" + "|".join(_slash_or_encoded(p) for p in SECRET_PATH_PREFIXES) + ")"
    + "(?!(?:" + "|".join(_PUBLIC_TAILS) + r")(?:/|%2[fF])?(?:[\s\"'?&#;]|$))"
    + r"[^\s\"'?&#;]+"
)  # fmt: skip
# Personal access tokens of the API (``ca_pat_`` + base62), wherever one appears: a header
# a custom access-log format names, a token pasted into a URL or an error message.
_ACCESS_TOKEN = re.compile(r"(ca_pat_)[0-9A-Za-z]+")
_SECRET_QUERY = re.compile(r"((?:^|[?&;])" + _SECRET_PARAMS + r"=)[^&;#\s\"']+", re.IGNORECASE)
_SECRET_PATH_QUERY = re.compile(
    "((?:" + "|".join(re.escape(p) for p in SECRET_QUERY_PATH_PREFIXES) + r")[^\s\"'?#]*\?)"
    + r"[^\s\"'#]+"
)  # fmt: skip


def redact(text: str) -> str:
    """``text`` with the secret of every token path and token parameter replaced."""
    if "ca_pat_" in text:
        text = _ACCESS_TOKEN.sub(r"\1" + REDACTED, text)
    if "/" not in text and "%2" not in text and "=" not in text:
        return text
    text = _SECRET_PATHS.sub(r"\1" + REDACTED, text)
    if "?" in text:
        text = _SECRET_PATH_QUERY.sub(r"\1" + REDACTED, text)
    return _SECRET_QUERY.sub(r"\1" + REDACTED, text)


def redact_query(path: str, query: str) -> str:
    """A query string on its own (gunicorn's ``%(q)s``), redacted as it would be after
    ``path``: all of it on a secret path, else its secret parameters."""
    if not query:
        return query
    return redact(f"{path}?{query}").partition("?")[2]


def redact_record(record: logging.LogRecord) -> None:
    """Rewrite a log record in place: its message, and its traceback text (an exception
    raised for a token path names the path)."""
    try:
        message = record.getMessage()
    except Exception:  # a broken record is not ours to fix
        return
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_factory_installed = False


def install_record_factory() -> None:
    """Make every log record of the process redacted as it is created (once)."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def configure_logging(config: dict[str, Any]) -> None:
    """``LOGGING_CONFIG``: Django's ``dictConfig`` plus the redacting record factory."""
    install_record_factory()
    logging.config.dictConfig(config)
