"""Settings of the load benchmark's server (bench/bench_load.py): production's, unchanged
but for where files go.

Production's own checks still run: SECRET_KEY and FIELD_ENCRYPTION_KEYS must be set (the
benchmark makes throwaway ones), and its stand-ins (local panel, registrar, card sandbox)
are refused unless DEMO_MODE is on, which the benchmark sets: a payment "by card" goes to
the in-process card sandbox, so nothing outside the machine is called. Static files are
collected (hashed and compressed, as production serves them) into the benchmark's own
temporary directory, not the checkout's.
"""

from pathlib import Path

from config.settings.production import *  # noqa: F403
from config.settings.production import env

STATIC_ROOT = Path(env.str("BENCH_STATIC_ROOT"))
