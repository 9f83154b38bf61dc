"""gunicorn settings: what `make run` serves with, and production.

    gunicorn -c src/config/gunicorn.conf.py            # HOST:PORT, 127.0.0.1:8000 unset

Serves ``config.wsgi:application`` (the settings module comes from
DJANGO_SETTINGS_MODULE: ``manage.py run_all`` passes on the local settings, wsgi.py
defaults to production's). The access log is on, to standard output unless
GUNICORN_ACCESS_LOG names a file, and holds no secret: request lines, paths, query
strings, Referers and headers are redacted like every Django log (invitation,
password-reset, email-change, contact-confirmation and ownership-transfer tokens become
``[redacted]``; credentials and cookies are never written). Static files are served by
WhiteNoise inside the app. Command-line options (``--bind``, ``--workers``,
``--access-logfile FILE``…) override what is set here.
"""

import os
from pathlib import Path

# src/, so that `config` and `clientarea` import from any working directory.
pythonpath = str(Path(__file__).resolve().parent.parent)
wsgi_app = "config.wsgi:application"

# HOST and PORT as `make run` takes them (PORT also makes SITE_URL's default). Set here
# because gunicorn's own default, with PORT in the environment, listens on every address.
bind = [f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"]

# Processes and threads. SQLite (the default database) takes one writer at a time and
# makes the others wait (its busy timeout), so more processes only queue up on its lock:
# two processes of four threads each serve a demo or a small provider. Threads also keep
# a page that waits on the control panel or registrar (up to OUTSIDE_CALL_BUDGET_SECONDS)
# from holding a whole process. On PostgreSQL, WEB_CONCURRENCY sets the processes
# (gunicorn's usual variable; about 2 per core), GUNICORN_THREADS the threads of each.
_sqlite = os.environ.get("DATABASE_URL", "sqlite:").startswith("sqlite:")
_default_workers = 2 if _sqlite else min(2 * (os.cpu_count() or 1) + 1, 8)
workers = int(os.environ.get("WEB_CONCURRENCY", _default_workers))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))
# Longer than the longest a page waits on an outside system (30 s by default), so such a
# page is answered rather than its worker killed.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 60))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", 20))
keepalive = 5
# A process is replaced after this many requests (jittered so they do not all restart at
# once): memory that a long-lived process gathers is given back.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", 2000))
max_requests_jitter = max_requests // 10
# Nothing here uses gunicorn's control socket; several servers on one machine (two
# `make run`s, the tests) would otherwise contend for the one default path.
control_socket_disable = True

logger_class = "clientarea.security.gunicorn_logger.RedactingLogger"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
