"""Demo data: Pat the partner has two-factor on, with a documented TOTP secret, so the
two-step login can be tried with any authenticator app (or `oathtool --totp -b`)."""

from __future__ import annotations

import base64

from django_otp.plugins.otp_totp.models import TOTPDevice

from clientarea.core.demo import DemoContext

from .twofactor import recovery_codes_create

# Base32, as authenticator apps take it. Demo only: never reuse it.
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def load(ctx: DemoContext) -> None:
    key = base64.b32decode(DEMO_TOTP_SECRET).hex()
    TOTPDevice.objects.create(user=ctx.partner, name="Authenticator app", key=key, confirmed=True)
    recovery_codes_create(user=ctx.partner)
