"""Demo data: Pat the partner and Sam the staff member have two-factor on, with a
documented TOTP secret, so the two-step login can be tried with any authenticator app (or
`oathtool --totp -b`). The back office needs staff two-factor (STAFF_REQUIRE_TWO_FACTOR)."""

from __future__ import annotations

import base64

from django_otp.plugins.otp_totp.models import TOTPDevice

from clientarea.core.demo import DemoContext

from .twofactor import recovery_codes_create

# Base32, as authenticator apps take it. Demo only: never reuse it.
DEMO_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def load(ctx: DemoContext) -> None:
    key = base64.b32decode(DEMO_TOTP_SECRET).hex()
    for person in (ctx.partner, ctx.staff):
        TOTPDevice.objects.create(user=person, name="Authenticator app", key=key, confirmed=True)
        recovery_codes_create(user=person)
