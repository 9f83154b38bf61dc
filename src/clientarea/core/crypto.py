"""Secrets at rest, encrypted with keys from the environment: control-panel passwords,
panel API tokens and the secret a pending outside change carries (a new password).

``settings.FIELD_ENCRYPTION_KEYS`` is a list of Fernet keys, newest first: the first one
encrypts, every one of them decrypts. To rotate, put a new key first, run
``manage.py rotate_encryption_keys`` (re-encrypts every stored secret with the new key),
then drop the old key. The database holds only Fernet tokens (AES-128-CBC + HMAC), so a
dump of it never yields a password without the keys.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnavailable(Exception):
    """The stored secret cannot be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS must hold at least one Fernet key.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS holds a malformed Fernet key.") from exc


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken as exc:
        raise SecretUnavailable("No configured key decrypts this secret.") from exc


def rotate(token: str) -> str:
    """Re-encrypt `token` with the first (newest) key."""
    try:
        return fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken as exc:
        raise SecretUnavailable("No configured key decrypts this secret.") from exc
