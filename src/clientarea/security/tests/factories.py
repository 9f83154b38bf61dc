from __future__ import annotations

from typing import Any

from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from clientarea.security.twofactor import recovery_codes_create


def two_factor_on(user: Any) -> tuple[TOTPDevice, list[str]]:
    """Give `user` a confirmed TOTP device and fresh recovery codes."""
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    return device, recovery_codes_create(user=user)


def totp_now(device: TOTPDevice) -> str:
    """The code the user's authenticator app shows right now."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def fresh_code(device: TOTPDevice) -> str:
    """A code that has not been used yet (forget the last accepted time step, as if the
    next 30-second window had come)."""
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)
    return totp_now(device)
