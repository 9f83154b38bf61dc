"""Settings for `make run` on a developer's machine."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DEBUG", default=True)
# `make run` shows the product with its local stand-ins (panel, registrar, card sandbox).
DEMO_MODE = env.bool("DEMO_MODE", default=True)
# Without EMAIL_URL, mail goes to the local mail viewer in the back office (one line in
# the terminal each) instead of whole messages among the request logs.
if DEMO_MODE and not env.str("EMAIL_URL", default=""):
    EMAIL_BACKEND = "clientarea.notifications.demo_mail.DemoMailBackend"
# Staff notes about tickets go to a local address here (see the local mail viewer).
SUPPORT_STAFF_EMAIL = env.str("SUPPORT_STAFF_EMAIL", default="support@example.com")
