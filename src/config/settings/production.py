"""Production settings: refuses to start without real secrets; passes `check --deploy`."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import (
    ATTACHMENTS_S3_BUCKET,
    ATTACHMENTS_S3_ENDPOINT_URL,
    ATTACHMENTS_S3_REGION,
    BILLING_CARD_GATEWAY,
    DEMO_MODE,
    DOMAINS_REGISTRAR_DRIVER,
    HOSTING_PANEL_DRIVER,
    STAND_IN_DRIVERS,
    STORAGES,
    env,
)

DEBUG = False

SECRET_KEY = env.str("SECRET_KEY", default="")
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("dev-only"):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 50 characters in production."
    )
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
if not FIELD_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must be set in production.")

# A provider who deploys with a stand-in would tell customers their cPanel password or
# nameservers changed when nothing changed, or take "payments" in test mode: refuse to
# start, unless this is a demonstration (DEMO_MODE, which says so on every page).
_stand_ins = [
    f"{name}={path}"
    for name, path in (
        ("HOSTING_PANEL_DRIVER", HOSTING_PANEL_DRIVER),
        ("DOMAINS_REGISTRAR_DRIVER", DOMAINS_REGISTRAR_DRIVER),
    )
    if path in STAND_IN_DRIVERS
]
if BILLING_CARD_GATEWAY == "sandbox":
    _stand_ins.append("BILLING_CARD_GATEWAY=sandbox")
if _stand_ins and not DEMO_MODE:
    raise ImproperlyConfigured(
        "Production refuses stand-ins that change nothing real: "
        + ", ".join(_stand_ins)
        + ". Configure the real ones (see the README: clientarea.hosting.whm.WhmPanelDriver, "
        'clientarea.domains.epp.EppRegistrarDriver, BILLING_CARD_GATEWAY="" for no cards), '
        "or set DEMO_MODE=true for a demonstration."
    )

# Half an object-store configuration would quietly keep attachments on this machine's
# disk (the other app processes could not read them): refuse it. A bucket without keys is
# fine: boto3 then finds the machine's role or profile.
_s3_without_bucket = [
    name
    for name, value in (
        ("ATTACHMENTS_S3_ENDPOINT_URL", ATTACHMENTS_S3_ENDPOINT_URL),
        ("ATTACHMENTS_S3_REGION", ATTACHMENTS_S3_REGION),
    )
    if value
]
if _s3_without_bucket and not ATTACHMENTS_S3_BUCKET:
    raise ImproperlyConfigured(
        f"{' and '.join(_s3_without_bucket)} set without ATTACHMENTS_S3_BUCKET: set the "
        "bucket to keep ticket attachments in object storage, or unset them to keep them "
        "on the local disk (MEDIA_ROOT)."
    )
if ATTACHMENTS_S3_BUCKET and bool(env.str("AWS_ACCESS_KEY_ID", default="")) != bool(
    env.str("AWS_SECRET_ACCESS_KEY", default="")
):
    raise ImproperlyConfigured(
        "ATTACHMENTS_S3_BUCKET: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
        "neither (to use the machine's role or profile)."
    )

STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Staff need two-factor before the back office opens (set False only to bootstrap).
STAFF_REQUIRE_TWO_FACTOR = env.bool("STAFF_REQUIRE_TWO_FACTOR", default=True)

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
# "__Host-" cookies are only accepted over HTTPS, for this exact host, path / (ASVS 3.3.1).
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"
LOGIN_DEVICE_COOKIE_NAME = "__Host-login_device"
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
