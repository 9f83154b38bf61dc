"""The client address behind reverse proxies: X-Forwarded-For is read from the right only
as far as TRUSTED_PROXIES vouch for it, so a forged header changes nothing and users
behind one proxy do not share one address (and one throttle)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client, RequestFactory

from clientarea.accounts.tests.factories import TEST_PASSWORD, UserFactory
from clientarea.audit.services import client_ip

PROXY = "10.0.0.1"


def _ip(remote: str | None, xff: str | None = None) -> str | None:
    meta: dict[str, Any] = {}
    if xff is not None:
        meta["HTTP_X_FORWARDED_FOR"] = xff
    request = RequestFactory().get("/", **meta)
    if remote is None:
        del request.META["REMOTE_ADDR"]
    else:
        request.META["REMOTE_ADDR"] = remote
    return client_ip(request)


def test_without_trusted_proxies_the_header_is_ignored(settings: Any) -> None:
    settings.TRUSTED_PROXIES = []
    assert _ip("203.0.113.5", "198.51.100.1") == "203.0.113.5"


def test_a_forged_header_from_an_untrusted_peer_is_ignored(settings: Any) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    assert _ip("203.0.113.5", "198.51.100.1, 10.0.0.1") == "203.0.113.5"


def test_behind_trusted_proxies_the_first_untrusted_hop_from_the_right_is_the_client(
    settings: Any,
) -> None:
    settings.TRUSTED_PROXIES = [PROXY, "172.16.0.0/12", "2001:db8:ffff::/48"]
    assert _ip(PROXY, "198.51.100.7") == "198.51.100.7"
    # whatever the client wrote on the left is not believed
    assert _ip(PROXY, "6.6.6.6, 198.51.100.7") == "198.51.100.7"
    # two proxies: the CDN edge (172.16.x) forwarded to ours
    assert _ip(PROXY, "6.6.6.6, 198.51.100.7, 172.16.4.2") == "198.51.100.7"
    assert _ip("2001:db8:ffff::2", "2001:db8:1::5") == "2001:db8:1::5"
    # ports and IPv4-mapped forms that proxies write
    assert _ip(PROXY, "198.51.100.7:51234") == "198.51.100.7"
    assert _ip(PROXY, "[2001:db8:1::5]:443") == "2001:db8:1::5"
    assert _ip("::ffff:10.0.0.1", "198.51.100.7") == "198.51.100.7"
    # only proxies in the chain (a health check): the farthest one
    assert _ip(PROXY, "172.16.0.9") == "172.16.0.9"
    # a proxy that sent no header: itself
    assert _ip(PROXY) == PROXY


@pytest.mark.parametrize(
    "xff",
    ["", ",,,", "garbage", "unknown, 198.51.100.7 extra", "1.2.3.4.5", "[::1", "x" * 10000],
)
def test_malformed_headers_never_fail_and_never_lose_the_address(settings: Any, xff: str) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    assert _ip(PROXY, xff) == PROXY


def test_junk_left_of_the_client_is_never_reached(settings: Any) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    assert _ip(PROXY, "garbage, 198.51.100.7") == "198.51.100.7"


def test_missing_or_junk_remote_addr(settings: Any) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    assert _ip(None, "198.51.100.7") is None
    assert _ip("not-an-ip", "198.51.100.7") is None


@pytest.mark.django_db
def test_two_clients_behind_one_proxy_have_separate_counters(settings: Any) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    UserFactory(email="victim@example.com")
    attacker, person = Client(), Client()

    def post(client: Client, password: str, xff: str) -> int:
        data = {"username": "victim@example.com", "password": password}
        response = client.post("/login/", data, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=xff)
        return int(response.status_code)

    for _ in range(5):
        assert post(attacker, "wrong-guess-123", "198.51.100.66") == 200
    assert post(attacker, TEST_PASSWORD, "198.51.100.66") == 429
    assert post(person, TEST_PASSWORD, "192.0.2.44") == 302


@pytest.mark.django_db
def test_a_forged_header_does_not_escape_the_limit(settings: Any) -> None:
    settings.TRUSTED_PROXIES = [PROXY]
    UserFactory(email="victim@example.com")
    attacker = Client()
    for n in range(5):
        attacker.post(
            "/login/",
            {"username": "victim@example.com", "password": "wrong-guess-123"},
            REMOTE_ADDR="203.0.113.66",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        )
    refused = attacker.post(
        "/login/",
        {"username": "victim@example.com", "password": TEST_PASSWORD},
        REMOTE_ADDR="203.0.113.66",
        HTTP_X_FORWARDED_FOR="192.0.2.1",
    )
    assert refused.status_code == 429


def test_a_bad_trusted_proxies_entry_stops_the_start() -> None:
    src = Path(__file__).resolve().parents[3]
    env = {**os.environ, "TRUSTED_PROXIES": "10.0.0.1,not-a-network"}
    result = subprocess.run(
        [sys.executable, "-c", "import config.settings.base"],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "TRUSTED_PROXIES" in result.stderr and "not-a-network" in result.stderr


def test_behind_a_unix_socket_nobody_shares_one_pair_and_nobody_is_locked_out() -> None:
    """gunicorn on a unix socket gives every request an empty REMOTE_ADDR. Without a
    "unix" trusted proxy the address is unknown: no per-address count is kept (else all
    visitors would share one and five failures would lock the person out); with it, the
    proxy's X-Forwarded-For names each client."""
    from django.test import RequestFactory, override_settings

    from clientarea.audit.services import client_ip

    request = RequestFactory().get("/", REMOTE_ADDR="", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert client_ip(request) is None
    with override_settings(TRUSTED_PROXIES=["unix"]):
        assert client_ip(request) == "203.0.113.9"
        forged = RequestFactory().get(
            "/", REMOTE_ADDR="", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9"
        )
        assert client_ip(forged) == "203.0.113.9"
    with override_settings(TRUSTED_PROXIES=["unix"]):
        peer = RequestFactory().get("/", REMOTE_ADDR="192.0.2.7", HTTP_X_FORWARDED_FOR="1.1.1.1")
        assert client_ip(peer) == "192.0.2.7"  # an addressed peer is not the socket
