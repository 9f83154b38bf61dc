"""Two-factor authentication: TOTP (django-otp's device) plus one-time recovery codes.

A code is accepted once: django-otp remembers the last accepted time step and refuses it
and anything older, and the device row is locked while a code is checked, so two requests
racing with the same code cannot both pass (ASVS 6.6.x / 6.5.1). Recovery codes are stored
as SHA-256 and marked used with a conditional UPDATE, so each works exactly once.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

import segno
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from .models import RecoveryCode

RECOVERY_CODE_COUNT = 10
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 symbols, no 0/o/1/l
_RECOVERY_CHARS = 24  # 24 x 5 bits = 120 bits


def two_factor_devices(user_id: int) -> Any:
    """The user's confirmed devices: two-factor is on while there is one."""
    return TOTPDevice.objects.filter(user_id=user_id, confirmed=True)


def user_has_two_factor(user: Any) -> bool:
    if user is None or not getattr(user, "pk", None):
        return False
    return bool(two_factor_devices(user.pk).exists())


def users_with_two_factor(user_ids: Iterable[int]) -> set[int]:
    """Which of these users have two-factor on (one query; for the User Management list)."""
    return set(
        TOTPDevice.objects.filter(user_id__in=list(user_ids), confirmed=True).values_list(
            "user_id", flat=True
        )
    )


def totp_pending_device(user: Any) -> TOTPDevice:
    """The unconfirmed device shown during setup (created once, reused on reload)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def totp_secret_base32(device: TOTPDevice) -> str:
    return base64.b32encode(device.bin_key).decode().rstrip("=")


def totp_qr_data_uri(device: TOTPDevice) -> str:
    """The otpauth:// URI as an SVG data URI (an <img>, so no inline script or style)."""
    uri = device.config_url
    issuer = getattr(settings, "OTP_TOTP_ISSUER", None)
    if issuer and "issuer=" not in uri:  # pragma: no cover - django-otp adds it
        uri += f"&issuer={issuer}"
    return str(segno.make(uri, error="m").svg_data_uri(scale=5, border=2))


def totp_check(*, device: TOTPDevice, token: str) -> bool:
    """Check a TOTP code against a device, refusing replays, under a row lock."""
    token = "".join(token.split())
    if not token.isdigit() or len(token) != device.digits:
        return False
    with transaction.atomic():
        locked = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        ok = bool(locked.verify_token(token))
    device.refresh_from_db()
    return ok


def _normalise_code(code: str) -> str:
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _code_digest(code: str) -> str:
    return hashlib.sha256(_normalise_code(code).encode()).hexdigest()


def recovery_codes_create(*, user: Any) -> list[str]:
    """Replace the user's recovery codes; returns the new codes (shown once, never stored)."""
    RecoveryCode.objects.filter(user=user).delete()
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(_RECOVERY_CHARS))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_CHARS, 4)))
    RecoveryCode.objects.bulk_create(
        [RecoveryCode(user=user, digest=_code_digest(c)) for c in codes]
    )
    return codes


def recovery_code_use(*, user: Any, code: str) -> bool:
    """Spend one recovery code: True once, False ever after (and for wrong codes)."""
    if len(_normalise_code(code)) != _RECOVERY_CHARS:
        return False
    used = RecoveryCode.objects.filter(
        user=user, digest=_code_digest(code), used_at__isnull=True
    ).update(used_at=timezone.now())
    return used == 1


def recovery_codes_left(user: Any) -> int:
    return RecoveryCode.objects.filter(user=user, used_at__isnull=True).count()


def two_factor_verify(*, user: Any, token: str) -> str | None:
    """Check a login's second factor: a TOTP code or a recovery code.
    Returns "totp" or "recovery" when accepted, None otherwise."""
    token = token.strip()
    compact = "".join(token.split())
    if compact.isdigit():
        for device in TOTPDevice.objects.filter(user=user, confirmed=True):
            if totp_check(device=device, token=compact):
                return "totp"
        return None
    if recovery_code_use(user=user, code=token):
        return "recovery"
    return None
