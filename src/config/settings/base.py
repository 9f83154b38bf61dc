"""Settings shared by every environment.

Everything that differs between a laptop and production comes from the environment
(12-factor); the defaults here are the safe local ones so that `make run` works with
nothing set.
"""

import importlib.util
import ipaddress
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[3]
VAR_DIR = BASE_DIR / "var"
(VAR_DIR / "static").mkdir(parents=True, exist_ok=True)

env = environ.Env()

SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me")
# Old keys keep existing sessions and reset links valid while a new SECRET_KEY rolls out.
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

SITE_NAME = env.str("SITE_NAME", default="Jiinubi")
# Links in emails are always built from SITE_URL, never from the request's Host header.
# Unset, it is the local address on PORT (the port `make run` serves on), so that
# `PORT=8080 make run` emails links that work; an explicit SITE_URL always wins.
try:
    PORT = env.int("PORT", default=8000)
except ValueError as _error:
    raise ImproperlyConfigured(f"PORT must be a port number, not {env.str('PORT')!r}.") from _error
SITE_URL = env.str("SITE_URL", default=f"http://127.0.0.1:{PORT}").rstrip("/")
# The provider's postal address, printed on invoices.
SITE_ADDRESS = env.str(
    "SITE_ADDRESS", default="Jiinubi Hosting Ltd\n1 Server Street\nDublin D02 X285\nIreland"
)
# Shown on the pay page to customers who choose bank transfer.
BILLING_BANK_DETAILS = env.str(
    "BILLING_BANK_DETAILS",
    default="Bank: Example Bank plc\nIBAN: IE29 AIBK 9311 5212 3456 78\nBIC: AIBKIE2D",
    multiline=True,
)
# Add Funds: the smallest and largest payment into the credit balance, and the largest
# credit balance it may reach (in the account's currency).
BILLING_ADD_FUNDS_MIN = env.str("BILLING_ADD_FUNDS_MIN", default="10.00")
BILLING_ADD_FUNDS_MAX = env.str("BILLING_ADD_FUNDS_MAX", default="500.00")
BILLING_CREDIT_MAX = env.str("BILLING_CREDIT_MAX", default="2000.00")

INSTALLED_APPS = [
    # Django's admin with the back-office site of clientarea.security.backoffice: staff
    # log in through /login/ and need two-factor (STAFF_REQUIRE_TWO_FACTOR).
    "clientarea.security.backoffice.BackOfficeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "clientarea.core",
    "clientarea.accounts",
    "clientarea.audit",
    "clientarea.notifications",
    "clientarea.billing",
    "clientarea.hosting",
    "clientarea.domains",
    "clientarea.support",
    # The REST API (/api/v1/) and its API Tokens page; DRF, its OpenAPI schema and the
    # docs page's static files (Swagger UI, served locally).
    "clientarea.api",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_countries",
    "clientarea.security",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy, strict-origin referrers on token pages (security.headers).
    "clientarea.security.headers.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # /api/: drops the session cookie before the session is read (only a token
    # authenticates the API) and answers every error as problem+json (clientarea.api).
    "clientarea.api.middleware.ApiBoundaryMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Resolves the current account and enforces every view's declared access rule.
    "clientarea.accounts.middleware.AccessMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "src" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "clientarea.core.context_processors.site",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'clientarea.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web server's processes and the worker share the file:
    # readers never wait for the writer, and a writer waits up to `timeout` seconds (the
    # driver's busy timeout) for another instead of failing at once with "database is
    # locked". In WAL mode synchronous=NORMAL is still safe against corruption (a power cut
    # may lose the last commits, never break the file) and saves an fsync per commit.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Behind PgBouncer in transaction mode (docs/deploy.md) each transaction may get
    # another server connection: nothing may outlive a transaction on the server, so no
    # server-side cursors (iterator() would lose its cursor) and no prepared statements.
    if env.bool("DATABASE_TRANSACTION_POOLING", default=False):
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# NIST SP 800-63B rev. 4: length (15, or 8 with two-factor; up to 1024 accepted), a list
# of common/breached passwords shipped with Django, no composition rules.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "clientarea.security.validators.LengthValidator",
        "OPTIONS": {"min_length": 15, "min_length_two_factor": 8, "max_length": 1024},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "clientarea.security.validators.BreachedPasswordValidator"},
    {"NAME": "clientarea.security.validators.ContextWordsValidator"},
]

SESSION_ENGINE = "django.contrib.sessions.backends.db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 60 * 60)
# A session ends after this long without a request, and this long after login whatever
# happens (seconds; ASVS 7.3.1, 7.3.2).
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)
SESSION_ABSOLUTE_LIFETIME = env.int("SESSION_ABSOLUTE_LIFETIME", default=12 * 60 * 60)
# "Confirm your password" stays valid this long (seconds).
REAUTH_WINDOW_SECONDS = env.int("REAUTH_WINDOW_SECONDS", default=5 * 60)
# Email-change confirmation links stay valid this long (seconds).
EMAIL_CHANGE_TIMEOUT = 24 * 60 * 60
# Two-factor: TOTP via django-otp; failed codes are throttled by clientarea.security.throttle.
OTP_TOTP_ISSUER = SITE_NAME
OTP_TOTP_THROTTLE_FACTOR = 0
# Never show a TOTP key or QR code in the back office (clientarea.security.admin also
# replaces django-otp's device admin with a read-only one).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# Staff must have two-factor on before the back office (/admin/) opens to them.
STAFF_REQUIRE_TWO_FACTOR = env.bool("STAFF_REQUIRE_TWO_FACTOR", default=True)
# Throttles as {scope: (failures, seconds)}; see clientarea.security.throttle for defaults.
SECURITY_THROTTLES: dict[str, tuple[int, int]] = {}
# Reverse proxies (IPs or CIDRs) whose X-Forwarded-For is believed, read from the right
# one hop per trusted proxy (clientarea.audit.services.client_ip). Empty: REMOTE_ADDR.
# "unix" trusts a proxy that reaches the app over a unix socket (no REMOTE_ADDR).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
for _proxy in TRUSTED_PROXIES:
    if _proxy.strip() == "unix":
        continue
    try:
        ipaddress.ip_network(_proxy.strip(), strict=False)
    except ValueError as _error:
        raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_proxy!r} is not an IP or CIDR.") from _error
# The signed cookie that marks a browser a person has logged in from (login throttling
# never locks it out for others' failures; clientarea.security.login_throttle).
LOGIN_DEVICE_COOKIE_NAME = "login_device"
LOGIN_DEVICE_COOKIE_AGE = 365 * 24 * 60 * 60
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
PASSWORD_RESET_TIMEOUT = 60 * 60

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# Ticket attachments, the only uploaded files, are the default storage: the local disk
# (MEDIA_ROOT), or an S3-compatible bucket once ATTACHMENTS_S3_BUCKET is set, so that
# every app process on every machine reads the same files. The endpoint is for services
# other than AWS (empty: AWS); the credentials are boto3's own (AWS_ACCESS_KEY_ID and
# AWS_SECRET_ACCESS_KEY, a profile, or the machine's role), never a Django setting.
ATTACHMENTS_S3_BUCKET = env.str("ATTACHMENTS_S3_BUCKET", default="")
ATTACHMENTS_S3_ENDPOINT_URL = env.str("ATTACHMENTS_S3_ENDPOINT_URL", default="")
ATTACHMENTS_S3_REGION = env.str("ATTACHMENTS_S3_REGION", default="")
STORAGES = {
    "default": (
        {
            "BACKEND": "clientarea.support.storage.S3AttachmentStorage",
            "OPTIONS": {
                "bucket_name": ATTACHMENTS_S3_BUCKET,
                "endpoint_url": ATTACHMENTS_S3_ENDPOINT_URL or None,
                "region_name": ATTACHMENTS_S3_REGION or None,
            },
        }
        if ATTACHMENTS_S3_BUCKET
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "/media/"

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
if EMAIL_CONFIG.get("EMAIL_FILE_PATH"):
    # `filemail:///var/mail/x` names an absolute path; django-environ drops the leading slash.
    EMAIL_CONFIG["EMAIL_FILE_PATH"] = "/" + EMAIL_CONFIG["EMAIL_FILE_PATH"].lstrip("/")
vars().update(EMAIL_CONFIG)
# Seconds each exchange with the mail server may take (Django's default is none: a mail
# server that stops answering would hold a worker, and the row it sends, forever).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default=f"{SITE_NAME} <no-reply@example.com>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Outbox retries: attempt n waits OUTBOX_RETRY_BASE_SECONDS * 2**(n-1), up to this many tries.
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=8)
OUTBOX_RETRY_BASE_SECONDS = env.int("OUTBOX_RETRY_BASE_SECONDS", default=30)
# An outage of the mail server uses up no email's attempts: every worker waits
# OUTBOX_RETRY_BASE_SECONDS, doubling, up to this long between tries to reach it
# (clientarea.notifications.mail_server), so mail goes within this long of its return.
OUTBOX_SERVER_RETRY_MAX_SECONDS = env.int("OUTBOX_SERVER_RETRY_MAX_SECONDS", default=300)
# A worker's claim on the emails it took (its lease): renewed for each email just before
# sending it. A worker that dies leaves its emails to the others once this has passed.
# It must outlast one send (a few exchanges of up to EMAIL_TIMEOUT each; a system check
# says so), or another worker could take over an email still being sent.
OUTBOX_CLAIM_SECONDS = env.int("OUTBOX_CLAIM_SECONDS", default=300)
# The provider's support inbox: told of every new customer ticket and customer reply
# ("" = nobody). Never an account's email: not in any customer's Email History.
SUPPORT_STAFF_EMAIL = env.str("SUPPORT_STAFF_EMAIL", default="")
# The local mail viewer (demo mode only, clientarea.notifications.demo_mail): where the
# demo mail backend keeps copies of sent mail, and for how long.
DEMO_MAIL_DIR = env.path("DEMO_MAIL_DIR", default=str(VAR_DIR / "demo-mail"))
DEMO_MAIL_KEEP_HOURS = env.int("DEMO_MAIL_KEEP_HOURS", default=24)

# Keys for encrypting secrets at rest (control-panel passwords). Comma-separated Fernet
# keys: the first encrypts, all decrypt, so a new key is put first to rotate.
FIELD_ENCRYPTION_KEYS = env.list(
    "FIELD_ENCRYPTION_KEYS", default=["3_o1a4OJXvljhKDZfL4ZmTq4uuJt3xGP9ZzRzy6jkY4="]
)

INVITATION_VALID_DAYS = 7
# An ownership transfer's link works this long; the owner can cancel it until then.
OWNERSHIP_TRANSFER_VALID_HOURS = 72
# A closed account keeps its invoices and audit trail this many years (legal retention).
ACCOUNT_RETENTION_YEARS = env.int("ACCOUNT_RETENTION_YEARS", default=7)
# Data retention, run by the worker (clientarea.core.retention; audit events are never
# deleted): a login session's record on the Security page, this many days after it ended
# or was last used; a throttling counter, this many hours after its counting window closed
# (never while it blocks); the text of a delivered email, this many days after it was sent
# (the row, its recipient, subject and status stay in Email History; only its text goes).
RETENTION_SESSION_DAYS = env.int("RETENTION_SESSION_DAYS", default=90)
RETENTION_THROTTLE_HOURS = env.int("RETENTION_THROTTLE_HOURS", default=0)
RETENTION_EMAIL_BODY_DAYS = env.int("RETENTION_EMAIL_BODY_DAYS", default=90)
# The API's Idempotency-Key records (billing.PaymentRequest): a client retrying a payment
# within this many days gets the first answer again (later, the payment's own key still
# never pays twice).
RETENTION_PAYMENT_REQUEST_DAYS = env.int("RETENTION_PAYMENT_REQUEST_DAYS", default=30)

# Demo mode: the local stand-ins (panel, registrar, card sandbox) are allowed in production
# settings, and every page says so in a banner. Never for real customers.
DEMO_MODE = env.bool("DEMO_MODE", default=False)

# Control-panel and registrar drivers (dotted paths). The local ones are stand-ins that
# change nothing real: production refuses them unless DEMO_MODE is on.
HOSTING_PANEL_DRIVER = env.str(
    "HOSTING_PANEL_DRIVER", default="clientarea.hosting.drivers.LocalPanelDriver"
)
DOMAINS_REGISTRAR_DRIVER = env.str(
    "DOMAINS_REGISTRAR_DRIVER", default="clientarea.domains.drivers.LocalRegistrarDriver"
)
# The card gateway: "sandbox" (a processor's test mode, test cards only; a stand-in) or ""
# (no card payments: credit and bank transfer only).
BILLING_CARD_GATEWAY = env.str("BILLING_CARD_GATEWAY", default="sandbox")
# Stripe (clientarea.billing.stripe_gateway): the account's API keys (Dashboard >
# Developers > API keys; sk_live_/pk_live_ in production, check --deploy refuses test keys
# unless DEMO_MODE), the signing secret of the webhook endpoint (whsec_...), and the API
# address (Stripe's own; the tests point it at a local server).
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
# The names of the stand-ins, refused in production without DEMO_MODE.
STAND_IN_DRIVERS = frozenset(
    {
        "clientarea.hosting.drivers.LocalPanelDriver",
        "clientarea.domains.drivers.LocalRegistrarDriver",
    }
)

# Every call to an outside system (panel, registrar, card processor) is bounded: a timeout
# per request, a few retries with exponential backoff when nothing can have happened yet,
# and a total budget. A change whose result is unknown stays pending; the worker settles it
# after the grace period (longer than the budget, so the request has finished by then).
OUTSIDE_CALL_TIMEOUT_SECONDS = env.float("OUTSIDE_CALL_TIMEOUT_SECONDS", default=10.0)
OUTSIDE_CALL_ATTEMPTS = env.int("OUTSIDE_CALL_ATTEMPTS", default=3)
OUTSIDE_CALL_BACKOFF_SECONDS = env.float("OUTSIDE_CALL_BACKOFF_SECONDS", default=0.5)
OUTSIDE_CALL_BUDGET_SECONDS = env.float("OUTSIDE_CALL_BUDGET_SECONDS", default=30.0)
PENDING_CHANGE_GRACE_SECONDS = env.int("PENDING_CHANGE_GRACE_SECONDS", default=120)
PENDING_CHANGE_GIVE_UP_HOURS = env.int("PENDING_CHANGE_GIVE_UP_HOURS", default=24)
# How long the control panel's account summary (status, disk, bandwidth) is reused.
PANEL_SUMMARY_CACHE_SECONDS = env.int("PANEL_SUMMARY_CACHE_SECONDS", default=60)

# The EPP registry (RFC 5730-5734) behind clientarea.domains.epp.EppRegistrarDriver.
EPP_HOST = env.str("EPP_HOST", default="")
EPP_PORT = env.int("EPP_PORT", default=700)
EPP_CLIENT_ID = env.str("EPP_CLIENT_ID", default="")
EPP_PASSWORD = env.str("EPP_PASSWORD", default="")
# The client certificate and key the registry knows this registrar by (PEM files).
EPP_CERT_FILE = env.str("EPP_CERT_FILE", default="")
EPP_KEY_FILE = env.str("EPP_KEY_FILE", default="")
# The CA bundle to check the registry's certificate with ("" = the system's).
EPP_CA_FILE = env.str("EPP_CA_FILE", default="")
EPP_VERIFY_TLS = env.bool("EPP_VERIFY_TLS", default=True)
# Idle seconds before a keep-alive <hello> on the EPP session, and how long a login the
# registry refused is not tried again (so retries never lock the registrar account).
EPP_HELLO_AFTER_SECONDS = env.float("EPP_HELLO_AFTER_SECONDS", default=60.0)
EPP_LOGIN_RETRY_SECONDS = env.float("EPP_LOGIN_RETRY_SECONDS", default=60.0)

# The cache: the panel's and the registry's summaries (PANEL_SUMMARY_CACHE_SECONDS) and,
# with Redis or Memcached only (an atomic incr), the API's per-token rate limit (else it
# counts in the database: api/throttling.py); nothing a permission or a revocation
# depends on. By default the database (the table `clientarea_cache`, made by `migrate`),
# so every app process and the worker share it with nothing more to run; Redis or
# Memcached when configured: CACHE_URL=rediscache://host:6379/1, pymemcache://host:11211,
# or locmemcache:// (each process its own memory, nothing shared).
CACHES = {"default": env.cache_url("CACHE_URL", default="dbcache://clientarea_cache")}
# Redis and Memcached need their client library, which the project does not install by
# itself: say which one at start-up rather than on the first page that uses the cache.
# django-environ names Django's removed MemcachedCache for memcache://, and PyLibMCCache
# for pymemcache:// while pymemcache is missing: both mean pymemcache here.
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.db.DatabaseCache":
    # Django's default of 300 entries would evict the summaries of a provider's 301st
    # service while they are still in use; expired entries are removed as the cache is
    # written either way.
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 50_000)
_cache_scheme = env.str("CACHE_URL", default="dbcache://").partition("://")[0]
_CACHE_CLIENTS = {
    "redis": ("redis", "django.core.cache.backends.redis.RedisCache"),
    "memcache": ("pymemcache", "django.core.cache.backends.memcached.PyMemcacheCache"),
    "pymemcache": ("pymemcache", "django.core.cache.backends.memcached.PyMemcacheCache"),
    "pylibmc": ("pylibmc", "django.core.cache.backends.memcached.PyLibMCCache"),
}
_CACHE_CLIENTS.update(
    dict.fromkeys(["rediscache", "rediss", "valkey", "valkeys"], _CACHE_CLIENTS["redis"])
)
if _cache_scheme in _CACHE_CLIENTS:
    _cache_library, CACHES["default"]["BACKEND"] = _CACHE_CLIENTS[_cache_scheme]
    if importlib.util.find_spec(_cache_library) is None:
        raise ImproperlyConfigured(
            f"CACHE_URL names a {_cache_scheme} cache, but its client library is not "
            f"installed: `.venv/bin/pip install {_cache_library}`, or leave CACHE_URL unset "
            "for the database cache."
        )

# The REST API (clientarea.api): personal access tokens only, JSON only, errors as
# application/problem+json, a per-token rate limit of API_RATE_LIMIT requests per window.
API_RATE_LIMIT = (
    env.int("API_RATE_LIMIT_REQUESTS", default=600),
    env.int("API_RATE_LIMIT_WINDOW_SECONDS", default=60),
)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["clientarea.api.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["clientarea.api.access.TokenPermission"],
    "DEFAULT_THROTTLE_CLASSES": ["clientarea.api.throttling.TokenRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "clientarea.api.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": f"{SITE_NAME} Client Area API",
    "DESCRIPTION": (
        "Personal access tokens (made on the API Tokens page) carry at most their "
        "creator's access. Errors are application/problem+json (RFC 9457)."
    ),
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "clientarea.api.schema.problems_as_problem_json",
    ],
    # Invoices, services and domains each have a "status" of their own.
    "ENUM_NAME_OVERRIDES": {
        "ServiceStatusEnum": "clientarea.hosting.models.Service.Status",
        "DomainStatusEnum": "clientarea.domains.models.Domain.Status",
        "InvoiceStatusEnum": "clientarea.billing.models.Invoice.DISPLAY_STATUSES",
    },
}

# Tokens in URLs (invitation, reset, email-change and contact links) never reach the logs:
# every handler carries the redacting filter, and LOGGING_CONFIG also redacts each record
# as it is made (clientarea.security.logfilters). The loggers Django configures with its
# own handlers (django: console and mail_admins; django.server: runserver's access log)
# are redefined here, so no handler without the filter is left.
LOGGING_CONFIG = "clientarea.security.logfilters.configure_logging"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "clientarea.security.logfilters.RedactSecretsFilter"}},
    "formatters": {
        "django.server": {
            "()": "django.utils.log.ServerFormatter",
            "format": "[{server_time}] {message}",
            "style": "{",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["redact"]},
        "django.server": {
            "class": "logging.StreamHandler",
            "formatter": "django.server",
            "filters": ["redact"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": ["django.server"], "level": "INFO", "propagate": False},
        "django.db.backends": {"level": "INFO"},
    },
}
