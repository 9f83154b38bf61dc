"""Login throttling that cannot be turned against a person (OWASP "Slow Down Online
Guessing Attacks with Device Cookies"; ASVS 6.1.1, 6.3.1).

After a successful login the browser gets a signed *device cookie* (user id, a digest of
the email, a random nonce; HttpOnly, SameSite=Lax, Secure and ``__Host-`` in production,
renewed with a new nonce at every login). Then, for each attempt:

- a browser presenting a valid device cookie **for the email typed** is a *known device*:
  it is judged only by its own counter (``login-device``, keyed by the nonce). A device
  that keeps failing has that nonce refused until the cool-off ends, replayed or not;
- any other browser is an *untrusted client*: it is limited per (email, client address)
  (``login-pair``, the tight limit), per address (``login-ip``, credential stuffing) and
  per email (``login-email``, a far higher ceiling). The ceiling refuses untrusted
  clients only, for that email, and the person is told once per lockout (an email and an
  audit event). The person's known devices still log in with the right password.

The two-factor code step follows the same split: known devices have their own counter
(``otp-device``), untrusted clients keep the per-user (``otp-user``) and per-address
(``otp-ip``) limits, and a per-user lockout is told to the person, since it means
somebody else knows their password.

Failures and refusals are the same for known and unknown emails (ASVS 6.3.8). Client
addresses come from ``clientarea.audit.services.client_ip`` (TRUSTED_PROXIES).
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare, salted_hmac

from clientarea.accounts.models import User, normalize_email
from clientarea.audit.services import audit_record, client_ip
from clientarea.notifications.services import email_send_to_person

from .throttle import limits, throttle_any_blocked, throttle_blocked, throttle_clear, throttle_fail

DEVICE_SALT = "clientarea.security.login-device"
MAX_COOKIE_LENGTH = 512


def _email_digest(email: str) -> str:
    return salted_hmac(f"{DEVICE_SALT}.email", normalize_email(email)).hexdigest()[:32]


@dataclass(frozen=True)
class LoginAttempt:
    """Who is trying: the email typed, the client address, and the nonce of a valid
    device cookie for that email (None for an untrusted client)."""

    email: str
    ip: str | None
    device: str | None

    @property
    def pair(self) -> str | None:
        # No known address (a misconfigured proxy or unix socket): no pair to count, or
        # every visitor would share one and could lock the person out. The per-email
        # ceiling, which spares known devices, still applies.
        return f"{self.email} {self.ip}" if self.ip else None


def client_network(address: str | None) -> str | None:
    """What the per-address limits count: the address itself for IPv4, its /64 for IPv6
    (one subscriber usually holds a whole /64, so counting single addresses would let
    anyone with one rotate past every limit)."""
    if not address:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


# Device cookies ------------------------------------------------------------------------


def device_cookie_value(*, user: User) -> str:
    """A new signed device cookie for `user`, with a fresh nonce."""
    payload = {"u": user.pk, "e": _email_digest(user.email), "n": secrets.token_urlsafe(16)}
    return signing.dumps(payload, salt=DEVICE_SALT)


def device_cookie_set(response: HttpResponse, *, user: User) -> None:
    response.set_cookie(
        settings.LOGIN_DEVICE_COOKIE_NAME,
        device_cookie_value(user=user),
        max_age=settings.LOGIN_DEVICE_COOKIE_AGE,
        path="/",
        secure=settings.SESSION_COOKIE_SECURE,
        httponly=True,
        samesite="Lax",
    )


def device_nonce(request: HttpRequest, *, email: str, user_id: int | None = None) -> str | None:
    """The nonce of the request's device cookie if it is validly signed, not too old, and
    was issued for `email` (and `user_id`, when known); else None."""
    raw = request.COOKIES.get(settings.LOGIN_DEVICE_COOKIE_NAME, "")
    if not raw or len(raw) > MAX_COOKIE_LENGTH or not email:
        return None
    try:
        data: Any = signing.loads(raw, salt=DEVICE_SALT, max_age=settings.LOGIN_DEVICE_COOKIE_AGE)
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    nonce, digest = data.get("n"), data.get("e")
    if not isinstance(nonce, str) or not nonce or not isinstance(digest, str):
        return None
    if not constant_time_compare(digest, _email_digest(email)):
        return None
    if user_id is not None and data.get("u") != user_id:
        return None
    return nonce


def login_attempt(request: HttpRequest, *, email: str, user: User | None = None) -> LoginAttempt:
    """Describe an attempt: for the password step from the email typed, for the code step
    from the user whose password was right."""
    email = normalize_email(user.email if user is not None else email)[:254]
    return LoginAttempt(
        email=email,
        ip=client_network(client_ip(request)),
        device=device_nonce(request, email=email, user_id=user.pk if user else None),
    )


# The password step ---------------------------------------------------------------------


def login_allowed(attempt: LoginAttempt) -> bool:
    """May this attempt be checked at all? (One query.)"""
    if attempt.device is not None:
        return not throttle_blocked(scope="login-device", key=attempt.device)
    return not throttle_any_blocked(
        [
            ("login-pair", attempt.pair),
            ("login-ip", attempt.ip),
            ("login-email", attempt.email),
        ]
    )


def login_failed(attempt: LoginAttempt, *, request: HttpRequest | None = None) -> None:
    """Count a wrong email or password against the counters that judge this client."""
    if attempt.device is not None:
        throttle_fail(scope="login-device", key=attempt.device)
        return
    throttle_fail(scope="login-pair", key=attempt.pair)
    throttle_fail(scope="login-ip", key=attempt.ip)
    throttle_fail(
        scope="login-email",
        key=attempt.email,
        on_block=lambda: _tell_person(email=attempt.email, step="password", request=request),
    )


def login_succeeded(attempt: LoginAttempt, *, user: User, response: HttpResponse) -> None:
    """The whole login passed: forget this client's own counters (never the per-email or
    per-user ceilings, which count other people's failures) and renew the device cookie
    with a new nonce."""
    if attempt.device is not None:
        throttle_clear(scope="login-device", key=attempt.device)
        throttle_clear(scope="otp-device", key=attempt.device)
    throttle_clear(scope="login-pair", key=attempt.pair)
    device_cookie_set(response, user=user)


# The two-factor code step --------------------------------------------------------------


def code_allowed(attempt: LoginAttempt, *, user: User) -> bool:
    if attempt.device is not None:
        return not throttle_blocked(scope="otp-device", key=attempt.device)
    return not throttle_any_blocked([("otp-user", user.pk), ("otp-ip", attempt.ip)])


def code_failed(attempt: LoginAttempt, *, user: User, request: HttpRequest | None = None) -> None:
    if attempt.device is not None:
        throttle_fail(scope="otp-device", key=attempt.device)
        return
    throttle_fail(scope="otp-ip", key=attempt.ip)
    throttle_fail(
        scope="otp-user",
        key=user.pk,
        on_block=lambda: _tell_person(email=user.email, step="code", request=request),
    )


# The notice ----------------------------------------------------------------------------


def _tell_person(*, email: str, step: str, request: HttpRequest | None) -> None:
    """Once per lockout (called inside the transaction that starts it): audit and email
    the person the login belongs to. Nothing for an email that has no active login."""
    user = User.objects.filter(email=normalize_email(email), is_active=True).first()
    if user is None:
        return
    failures, period = limits("login-email" if step == "password" else "otp-user")
    with transaction.atomic():
        audit_record(
            action="user.login_throttled",
            target=user,
            target_label=user.email,
            changes={"step": step},
            request=request,
        )
        email_send_to_person(
            to_email=user.email,
            to_name=user.get_full_name(),
            template="security/email/login_attempts",
            context={
                "user": user,
                "step": step,
                "failures": failures,
                "minutes": max(period // 60, 1),
            },
            to_user=user,
        )
