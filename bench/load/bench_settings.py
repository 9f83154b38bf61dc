"""Settings of the load benchmark's server (bench/bench_load.py): production's, but for
where static files go and that they are not compressed.

Production's own checks still run: SECRET_KEY and FIELD_ENCRYPTION_KEYS must be set (the
benchmark makes throwaway ones), and its stand-ins (local panel, registrar, card sandbox)
are refused unless DEMO_MODE is on, which the benchmark sets: a payment "by card" goes to
the in-process card sandbox, so nothing outside the machine is called. Static files are
collected into the benchmark's own temporary directory, not the checkout's, hashed as
production names them but not compressed: compressing every file (Brotli too, which
Locust's packages bring in) took minutes on a busy machine, and the simulated customers
fetch pages, not static files.
"""

from pathlib import Path

from config.settings.production import *  # noqa: F403
from config.settings.production import STORAGES, env

STATIC_ROOT = Path(env.str("BENCH_STATIC_ROOT"))
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
