"""Control-panel passwords are encrypted with the project's field keys (``core.crypto``)."""

from clientarea.core.crypto import SecretUnavailable, decrypt, encrypt, fernet, rotate

__all__ = ["SecretUnavailable", "decrypt", "encrypt", "fernet", "rotate"]
