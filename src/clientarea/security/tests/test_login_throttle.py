"""Login throttling from the attacker's side: a stranger who knows someone's email must
not be able to lock them out (OWASP device cookies; ASVS 6.1.1, 6.3.1, 6.3.8).

Time is moved with a clock fixture, never slept through."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core import signing
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clientarea.accounts.tests.factories import TEST_PASSWORD, UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail
from clientarea.security.login_throttle import DEVICE_SALT
from clientarea.security.models import ThrottleBucket
from clientarea.security.throttle import throttle_fail

from .factories import fresh_code, two_factor_on

pytestmark = pytest.mark.django_db
LOGIN = "/login/"
COOKIE = "login_device"
WRONG = "wrong-guess-123"
LOCKOUT_NOTICE = "Many failed attempts"
CODE_NOTICE = "Wrong two-factor codes"


class Clock:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now: datetime = timezone.now()
        monkeypatch.setattr(timezone, "now", lambda: self.now)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    yield Clock(monkeypatch)


def _post(client: Client, email: str, password: str, ip: str = "127.0.0.1") -> Any:
    return client.post(LOGIN, {"username": email, "password": password}, REMOTE_ADDR=ip)


def _known_device(email: str, ip: str = "192.0.2.10") -> Client:
    """The person's own browser: it has logged in once, then logged out."""
    device = Client()
    assert _post(device, email, TEST_PASSWORD, ip).status_code == 302
    assert device.cookies[COOKIE].value
    device.post("/logout/", REMOTE_ADDR=ip)
    return device


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _notices(email: str, marker: str = LOCKOUT_NOTICE) -> int:
    return OutboxEmail.objects.filter(to_email=email, subject__contains=marker).count()


def _attack_from_many_addresses(email: str, count: int, first: int = 1) -> None:
    for n in range(first, first + count):
        assert _post(Client(), email, WRONG, f"198.51.100.{n}").status_code == 200


# The pair limit ---------------------------------------------------------------------------


def test_five_wrong_passwords_from_five_addresses_lock_nobody_out() -> None:
    """The reported attack: five guesses from five addresses used to lock the person out
    for 15 minutes, renewable forever."""
    UserFactory(email="victim@example.com")
    device = _known_device("victim@example.com")
    _attack_from_many_addresses("victim@example.com", 5)
    assert _post(device, "victim@example.com", TEST_PASSWORD, "192.0.2.10").status_code == 302
    assert _logged_in(device)
    new_device = Client()  # below the per-email ceiling, a new device logs in too
    assert _post(new_device, "victim@example.com", TEST_PASSWORD, "192.0.2.99").status_code == 302
    assert _notices("victim@example.com") == 0


def test_five_failures_from_one_address_block_that_pair_only(clock: Clock) -> None:
    UserFactory(email="victim@example.com")
    UserFactory(email="neighbour@example.com")
    device = _known_device("victim@example.com", ip="203.0.113.5")
    attacker = Client()
    for _ in range(5):
        assert _post(attacker, "victim@example.com", WRONG, "203.0.113.5").status_code == 200
    # the pair is blocked, even for the right password from another browser there
    refused = _post(Client(), "victim@example.com", TEST_PASSWORD, "203.0.113.5")
    assert refused.status_code == 429 and "Too many attempts" in refused.content.decode()
    # another email from that address, the same email from another address: not blocked
    assert _post(Client(), "neighbour@example.com", TEST_PASSWORD, "203.0.113.5").status_code == 302
    assert _post(Client(), "victim@example.com", TEST_PASSWORD, "203.0.113.6").status_code == 302
    # the person's own browser at that very address is judged by its own counter
    assert _post(device, "victim@example.com", TEST_PASSWORD, "203.0.113.5").status_code == 302
    # and the block ends on its own
    clock.advance(minutes=15, seconds=1)
    assert _post(Client(), "victim@example.com", TEST_PASSWORD, "203.0.113.5").status_code == 302


# The per-email ceiling --------------------------------------------------------------------


def test_the_per_email_ceiling_refuses_untrusted_clients_but_not_the_known_device(
    settings: Any, clock: Clock
) -> None:
    settings.SECURITY_THROTTLES = {"login-email": (8, 3600)}
    UserFactory(email="victim@example.com")
    device = _known_device("victim@example.com")
    _attack_from_many_addresses("victim@example.com", 8)
    # a browser the person never used, from a fresh address, is refused for this email
    new_device = Client()
    assert _post(new_device, "victim@example.com", TEST_PASSWORD, "192.0.2.77").status_code == 429
    assert not _logged_in(new_device)
    # the known device still logs in with the right password
    assert _post(device, "victim@example.com", TEST_PASSWORD, "192.0.2.10").status_code == 302
    assert _logged_in(device)
    # other emails are untouched
    UserFactory(email="someone@example.com")
    assert _post(Client(), "someone@example.com", TEST_PASSWORD, "192.0.2.77").status_code == 302
    # the ceiling ends on its own
    clock.advance(hours=1, seconds=1)
    assert _post(new_device, "victim@example.com", TEST_PASSWORD, "192.0.2.77").status_code == 302


def test_the_person_is_told_once_per_lockout(settings: Any, clock: Clock) -> None:
    settings.SECURITY_THROTTLES = {"login-email": (4, 3600)}
    UserFactory(email="victim@example.com", first_name="Vic")
    _attack_from_many_addresses("victim@example.com", 4)
    for n in range(6):  # refused while it lasts, and not counted: no new notice
        assert _post(Client(), "victim@example.com", WRONG, f"192.0.2.{n}").status_code == 429
    assert _notices("victim@example.com") == 1
    notice = OutboxEmail.objects.get(to_email="victim@example.com")
    assert notice.kind == "personal"
    assert "4 failed attempts" in notice.body_text and "Hello Vic" in notice.body_text
    assert AuditEvent.objects.filter(action="user.login_throttled").count() == 1
    clock.advance(hours=1, seconds=1)
    _attack_from_many_addresses("victim@example.com", 4, first=40)
    assert _notices("victim@example.com") == 2


def test_the_ceiling_answers_the_same_for_unknown_emails_and_mails_nobody(settings: Any) -> None:
    """ASVS 6.3.8: the ceiling does not reveal whether an email has a login."""
    settings.SECURITY_THROTTLES = {"login-email": (3, 3600)}
    UserFactory(email="known@example.com")
    pages = []
    for email in ("known@example.com", "nobody@example.com"):
        _attack_from_many_addresses(email, 3)
        pages.append(_post(Client(), email, WRONG, "192.0.2.200"))
    assert pages[0].status_code == pages[1].status_code == 429
    assert pages[0].context["form"].errors == pages[1].context["form"].errors
    assert OutboxEmail.objects.filter(to_email="nobody@example.com").count() == 0
    assert _notices("known@example.com") == 1


# Device cookies that must not help -----------------------------------------------------------


def _ceiling_reached(settings: Any, email: str) -> None:
    settings.SECURITY_THROTTLES = {"login-email": (3, 3600)}
    _attack_from_many_addresses(email, 3)


def _with_cookie(value: str) -> Client:
    client = Client()
    client.cookies[COOKIE] = value
    return client


def test_a_tampered_or_forged_device_cookie_gives_no_exemption(settings: Any) -> None:
    UserFactory(email="victim@example.com")
    genuine = _known_device("victim@example.com").cookies[COOKIE].value
    _ceiling_reached(settings, "victim@example.com")
    payload, _, signature = genuine.rpartition(":")
    forged = [
        payload + ":" + ("A" if signature[0] != "A" else "B") + signature[1:],  # bad signature
        signing.dumps({"u": 1, "e": "x", "n": "chosen"}, salt=DEVICE_SALT, key="not-the-key"),
        signing.dumps({"n": "chosen"}, salt="another-salt"),  # our key, another purpose
        "junk",
        "x" * 5000,
    ]
    for value in forged:
        response = _post(_with_cookie(value), "victim@example.com", TEST_PASSWORD, "192.0.2.5")
        assert response.status_code == 429, value[:40]


def test_another_users_device_cookie_gives_no_exemption(settings: Any) -> None:
    """The attacker's own login gives them a genuine cookie: for their email only."""
    UserFactory(email="victim@example.com")
    UserFactory(email="attacker@example.com")
    attacker = _known_device("attacker@example.com", ip="203.0.113.66")
    _ceiling_reached(settings, "victim@example.com")
    response = _post(attacker, "victim@example.com", TEST_PASSWORD, "203.0.113.66")
    assert response.status_code == 429
    assert not _logged_in(attacker)


def test_a_device_that_keeps_failing_is_locked_out_even_when_its_cookie_is_replayed(
    clock: Clock,
) -> None:
    UserFactory(email="victim@example.com")
    device = _known_device("victim@example.com")
    stolen = device.cookies[COOKIE].value
    thief = _with_cookie(stolen)
    for _ in range(5):
        assert _post(thief, "victim@example.com", WRONG, "203.0.113.7").status_code == 200
    # the nonce is locked: replayed from anywhere, with the right password, it is refused
    for ip in ("203.0.113.8", "192.0.2.10"):
        replay = _with_cookie(stolen)
        assert _post(replay, "victim@example.com", TEST_PASSWORD, ip).status_code == 429
    # the device's failures did not count against the email or the addresses
    assert _post(Client(), "victim@example.com", TEST_PASSWORD, "203.0.113.7").status_code == 302
    clock.advance(minutes=15, seconds=1)
    assert _post(_with_cookie(stolen), "victim@example.com", TEST_PASSWORD).status_code == 302


def test_each_login_renews_the_device_cookie_with_a_new_nonce() -> None:
    UserFactory(email="victim@example.com")
    device = _known_device("victim@example.com")
    first = device.cookies[COOKIE].value
    assert _post(device, "victim@example.com", TEST_PASSWORD).status_code == 302
    assert device.cookies[COOKIE].value != first


def test_the_device_cookie_is_httponly_samesite_long_lived_and_holds_no_email(
    settings: Any,
) -> None:
    UserFactory(email="victim@example.com")
    response = _post(Client(), "victim@example.com", TEST_PASSWORD)
    morsel = response.cookies[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert int(morsel["max-age"]) >= 180 * 24 * 3600
    assert not morsel["secure"]  # local http; production below
    data = signing.loads(morsel.value, salt=DEVICE_SALT)
    assert "victim" not in str(data) and set(data) == {"u", "e", "n"}

    settings.LOGIN_DEVICE_COOKIE_NAME = "__Host-login_device"
    settings.SESSION_COOKIE_SECURE = True
    secure = _post(Client(), "victim@example.com", TEST_PASSWORD).cookies["__Host-login_device"]
    assert secure["secure"] and secure["path"] == "/" and not secure["domain"]


# The two-factor step --------------------------------------------------------------------


def test_strangers_with_the_password_cannot_lock_the_known_device_out_of_the_code_step() -> None:
    user = UserFactory(email="tf@example.com")
    otp, _ = two_factor_on(user)
    device = Client()
    _post(device, "tf@example.com", TEST_PASSWORD)
    assert device.post(LOGIN, {"token": fresh_code(otp)}).status_code == 302
    device.post("/logout/")
    thief = Client()
    _post(thief, "tf@example.com", TEST_PASSWORD, "203.0.113.9")
    for n in range(5):
        assert (
            thief.post(LOGIN, {"token": f"{n:06d}"}, REMOTE_ADDR="203.0.113.9").status_code == 200
        )
    assert _notices("tf@example.com", CODE_NOTICE) == 1  # they know the password: say so
    # an untrusted browser is refused codes for this user, even the right one
    other = Client()
    _post(other, "tf@example.com", TEST_PASSWORD, "192.0.2.50")
    assert (
        other.post(LOGIN, {"token": fresh_code(otp)}, REMOTE_ADDR="192.0.2.50").status_code == 429
    )
    # the person's own browser is not
    assert _post(device, "tf@example.com", TEST_PASSWORD).status_code == 302
    assert device.post(LOGIN, {"token": fresh_code(otp)}).status_code == 302
    assert _logged_in(device)


def test_a_known_device_guessing_codes_is_limited_by_its_own_counter() -> None:
    user = UserFactory(email="tf@example.com")
    otp, _ = two_factor_on(user)
    device = Client()
    _post(device, "tf@example.com", TEST_PASSWORD)
    device.post(LOGIN, {"token": fresh_code(otp)})
    device.post("/logout/")
    _post(device, "tf@example.com", TEST_PASSWORD)
    for n in range(5):
        assert device.post(LOGIN, {"token": f"{n:06d}"}).status_code == 200
    assert device.post(LOGIN, {"token": fresh_code(otp)}).status_code == 429


# Recovering through the mailbox ---------------------------------------------------------------


def test_a_password_reset_makes_the_browser_a_known_device(settings: Any) -> None:
    """When strangers hold the per-email ceiling, the person can still get in from a new
    device: the reset link proves the mailbox, and that browser then counts as theirs."""
    UserFactory(email="victim@example.com")
    _ceiling_reached(settings, "victim@example.com")
    browser = Client()
    assert _post(browser, "victim@example.com", TEST_PASSWORD).status_code == 429
    browser.post("/password-reset/", {"email": "victim@example.com"})
    body = OutboxEmail.objects.filter(subject__icontains="reset").latest("id").body_text
    path = "/" + next(w for w in body.split() if "/password-reset/" in w).split("/", 3)[3]
    form_url = browser.get(path)["Location"]
    new = "a long new passphrase"
    done = browser.post(form_url, {"new_password1": new, "new_password2": new})
    assert done.status_code == 302 and done.cookies[COOKIE].value
    assert _post(browser, "victim@example.com", new).status_code == 302


# Cost -------------------------------------------------------------------------------------


def test_login_queries_do_not_grow_with_failures_or_with_the_throttle_table() -> None:
    UserFactory(email="victim@example.com")
    device = _known_device("victim@example.com")

    def queries(client: Client, password: str, ip: str) -> int:
        with CaptureQueriesContext(connection) as ctx:
            _post(client, "victim@example.com", password, ip)
        return len(ctx.captured_queries)

    first = queries(Client(), WRONG, "198.51.100.1")  # creates this client's counters
    second = queries(Client(), WRONG, "198.51.100.1")
    for n in range(300):
        throttle_fail(scope="login-pair", key=f"other{n}@example.com 198.51.100.1")
    third = queries(Client(), WRONG, "198.51.100.1")
    assert second == third <= first <= 30
    assert ThrottleBucket.objects.count() > 300
    for _ in range(2):  # the fifth failure of this pair blocks it
        _post(Client(), "victim@example.com", WRONG, "198.51.100.1")
    assert queries(Client(), TEST_PASSWORD, "198.51.100.1") <= 3  # refused: one check
    assert queries(device, WRONG, "192.0.2.10") <= first
    assert queries(device, WRONG, "192.0.2.10") <= second
    with CaptureQueriesContext(connection) as page:
        Client().get(LOGIN)
    assert not any("throttle" in q["sql"] for q in page.captured_queries)


def test_an_unknown_client_address_locks_nobody_out() -> None:
    """Behind a unix socket with no trusted proxy every request has no address: five
    wrong passwords from five people must not lock the right one out for everyone."""
    UserFactory(email="victim@example.com")
    for _ in range(6):
        assert _post(Client(), "victim@example.com", WRONG, "").status_code == 200
    assert _post(Client(), "victim@example.com", TEST_PASSWORD, "").status_code == 302


def test_rotating_addresses_inside_one_ipv6_64_counts_as_one_address() -> None:
    UserFactory(email="victim@example.com")
    for host in range(1, 6):
        _post(Client(), "victim@example.com", WRONG, f"2001:db8:1:2::{host:x}")
    refused = _post(Client(), "victim@example.com", TEST_PASSWORD, "2001:db8:1:2::99")
    assert refused.status_code == 429
    # another /64 is another subscriber
    assert (
        _post(Client(), "victim@example.com", TEST_PASSWORD, "2001:db8:1:3::1").status_code == 302
    )
