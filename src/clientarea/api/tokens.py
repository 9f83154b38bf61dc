"""The format of a personal access token's secret, and how it is stored.

A secret reads ``ca_pat_`` + 30 random base62 characters + a 6-character base62 CRC32 of
those 30 (the layout of GitHub's tokens). The prefix tells secret scanners and people
what leaked; the checksum lets a scanner (and this app, before any database query) tell a
real-looking token from a random string with no false positives to speak of.

Only the SHA-256 of the whole secret is stored. A slow password hash (argon2) protects
guessable secrets; this one is 30 characters drawn by ``secrets`` from 62 symbols, about
178 bits, so nobody can search for it from its hash, and a fast hash can be looked up
through a unique index on every request (an argon2 check per API call would also let
anyone make the server burn CPU with made-up tokens). The hint kept for the lists is the
first four random characters: enough for a person to tell their tokens apart, far too
little to matter (about 154 unknown bits remain).
"""

from __future__ import annotations

import hashlib
import secrets
import string
import zlib

PREFIX = "ca_pat_"
ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase  # base62
RANDOM_CHARS = 30
CHECKSUM_CHARS = 6
LENGTH = len(PREFIX) + RANDOM_CHARS + CHECKSUM_CHARS
HINT_CHARS = 4


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits))


def checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode()), CHECKSUM_CHARS)


def secret_new() -> str:
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_CHARS))
    return PREFIX + random_part + checksum(random_part)


def secret_well_formed(secret: str) -> bool:
    """Prefix, length, alphabet and checksum: a typo or a made-up value fails here,
    before any database query."""
    if len(secret) != LENGTH or not secret.startswith(PREFIX):
        return False
    body = secret[len(PREFIX) :]
    if any(ch not in ALPHABET for ch in body):
        return False
    random_part, check = body[:RANDOM_CHARS], body[RANDOM_CHARS:]
    return secrets.compare_digest(checksum(random_part), check)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_hint(secret: str) -> str:
    """What the lists show of a token: ``ca_pat_AbCd…``."""
    return secret[: len(PREFIX) + HINT_CHARS]
