"""Settings for the test suite: fast hashing, mail kept in memory."""

from .base import *  # noqa: F403
from .base import BASE_DIR

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
MEDIA_ROOT = BASE_DIR / "var" / "test-media"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
FIELD_ENCRYPTION_KEYS = ["Zmlyc3Qta2V5LWZvci10ZXN0cy0zMi1ieXRlcy1vayE="]
# Each test process's memory, not the database cache: query counts stay those of the code
# under test, and tests that clear the cache clear only their own process's.
# (core's tests check the database cache itself.)
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Staff two-factor for the back office is on in production and locally; admin tests that
# are about something else log staff in without it. The back-office tests turn it on.
STAFF_REQUIRE_TWO_FACTOR = False
# Outside calls in tests: short backoff, so the retry paths stay quick.
OUTSIDE_CALL_BACKOFF_SECONDS = 0.01
OUTSIDE_CALL_TIMEOUT_SECONDS = 2.0
OUTSIDE_CALL_BUDGET_SECONDS = 10.0
