"""gunicorn settings for serving the client area in production.

    gunicorn -c src/config/gunicorn.conf.py --bind 127.0.0.1:8000

Serves ``config.wsgi:application`` with an access log whose request lines, paths, query
strings and headers are redacted like every Django log (invitation, password-reset,
email-change and contact-confirmation tokens become ``[redacted]``). Command-line options
(``--bind``, ``--workers``, ``--access-logfile FILE``…) override what is set here.
"""

import os
from pathlib import Path

# src/, so that `config` and `clientarea` import from any working directory.
pythonpath = str(Path(__file__).resolve().parent.parent)
wsgi_app = "config.wsgi:application"

logger_class = "clientarea.security.gunicorn_logger.RedactingLogger"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
