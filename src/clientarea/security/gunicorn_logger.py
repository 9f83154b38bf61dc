"""gunicorn's logs without tokens: its access log is written by gunicorn itself, outside
Django's logging, so ``src/config/gunicorn.conf.py`` installs this logger class.

Every value the access-log format can name (request line, path, query string, Referer,
headers, environ) goes through the same ``redact`` as Django's logs, and both gunicorn
loggers (access and error: "Error handling request /invitation/…") carry the same filter.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from .logfilters import RedactSecretsFilter, redact


class RedactingLogger(Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactSecretsFilter) for f in log.filters):
                log.addFilter(RedactSecretsFilter())

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> Any:
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: redact(v) if isinstance(v, str) else v for k, v in atoms.items()}
