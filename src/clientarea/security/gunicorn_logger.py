"""gunicorn's logs without tokens: its access log is written by gunicorn itself, outside
Django's logging, so ``src/config/gunicorn.conf.py`` installs this logger class.

Every value the access-log format can name (request line, path, query string, Referer,
headers, environ) goes through the same ``redact`` as Django's logs; credential headers
(Authorization, Cookie, Set-Cookie, anything naming a token, secret, key, signature or
password) are replaced whole, whatever a custom ``access_log_format`` asks for; and both
gunicorn loggers (access and error: "Error handling request /invitation/…") carry the
same filter.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from .logfilters import REDACTED, RedactSecretsFilter, redact, redact_query


class RedactingLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactSecretsFilter) for f in log.filters):
                log.addFilter(RedactSecretsFilter())

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> Any:
        atoms = super().atoms(resp, req, environ, request_time)
        cleaned = {
            key: REDACTED if _is_credential(key) and value else value
            for key, value in atoms.items()
        }
        cleaned = {k: redact(v) if isinstance(v, str) else v for k, v in cleaned.items()}
        # A query string alone (%(q)s, %({query_string}e)s) does not show which path it
        # belongs to: judged with the request's path.
        path = environ.get("PATH_INFO") or ""
        for key in ("q", "{query_string}e"):
            if isinstance(atoms.get(key), str):
                cleaned[key] = redact_query(path, atoms[key])
        return cleaned


# Headers (request %({name}i)s, response %({name}o)s) and environ entries (%({NAME}e)s)
# that are credentials whatever their value looks like: a format that names one logs
# "[redacted]" (a bearer token, a session cookie, a Basic password, a webhook signature).
_CREDENTIAL_WORDS = ("authorization", "cookie", "token", "secret", "api-key", "api_key",
                     "signature", "password")  # fmt: skip


def _is_credential(atom: str) -> bool:
    if not (atom.startswith("{") and atom[-2:] in ("}i", "}o", "}e")):
        return False
    name = atom[1:-2].lower()
    return any(word in name for word in _CREDENTIAL_WORDS)
