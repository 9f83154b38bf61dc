"""The web servers' own access logs hold no token (ASVS 16.2.5): ``manage.py runserver``
(what ``make dev`` starts) and gunicorn with ``src/config/gunicorn.conf.py`` (``make run``
and production), each started for real on a free loopback port, asked for token links,
then read."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
GUNICORN_CONF = ROOT / "src" / "config" / "gunicorn.conf.py"

TOKENS = {
    "/invitation/{}/": "InvitationTok3nThatIsSecret0123456789abcd",
    "/password-reset/MQ/{}/": "c9x2ab-R3setTokenThatIsSecret0123456789",
    "/security/email/confirm/{}/": "eyJ1IjoxfQ:1tXyZ:Ema1lChangeTokenSecret",
    "/contacts/confirm/{}/": "C0ntactConfirmTokenThatIsSecret012345",
    "/ownership/{}/": "0wnershipTransferTokenThatIsSecret0123",
    # the sandbox tokenizer's and a token page's query strings, whatever they hold
    "/billing/sandbox/tokens/?card={}": "SandboxCardQueryThatIsSecret01234567",
    "/invitation/accept/?ref={}": "AcceptPageQueryThatIsSecret0123456789",
    # a token in a query string, and a token path behind another prefix (a 404)
    "/login/?token={}": "QueryStr1ngTokenThatIsSecret0123456789",
    "/no-such-page/invitation/{}/": "NotFoundTok3nThatIsSecret0123456789ab",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated SQLite database for the servers (the views read invitations and
    throttling counters)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('serverlogs') / 'db.sqlite3'}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": url}
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--noinput", "-v0"],
        env=env,
        check=True,
        timeout=300,
    )
    return url


# Credentials a client sends: never in an access log, whatever its format names.
CREDENTIALS = {
    "Authorization": "Bearer ca_pat_HeaderTokenThatIsSecret0123456789ab",
    "Cookie": "sessionid=CookieSessionThatIsSecret0123456789",
}


def _request_every_token_link(port: int, headers: dict[str, str] | None = None) -> None:
    for template, token in TOKENS.items():
        url = f"http://127.0.0.1:{port}{template.format(token)}"
        request = urllib.request.Request(url, headers=headers or {})
        try:
            # No redirects followed: the server's line for the link itself is the point.
            opener = urllib.request.build_opener(_NoRedirect)
            opener.open(request, timeout=30).read()
        except urllib.error.HTTPError:
            pass  # 3xx / 4xx answers are logged all the same


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


Starter = Callable[[list[str], str, int, Path], None]


@pytest.fixture
def serve(database: str, tmp_path: Path) -> Iterator[Starter]:
    """A starter: run a server command (argv, settings module, port, output file) and
    wait until it listens; every server started is stopped at the end."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], settings: str, port: int, stderr: Path) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings,
            "DATABASE_URL": database,
            "PYTHONUNBUFFERED": "1",
            # Files the server might write stay in this test's own directory.
            "MEDIA_ROOT": str(tmp_path / "media"),
            "DEMO_MAIL_DIR": str(tmp_path / "demo-mail"),
        }
        with stderr.open("wb") as err:
            process = subprocess.Popen(
                argv, env=env, cwd=tmp_path, stdout=err, stderr=subprocess.STDOUT
            )
        started.append(process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, stderr.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"the server did not start: {stderr.read_text()}")

    yield start
    for process in started:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _assert_redacted(log: str, *, lines_for: str) -> None:
    leaked = [token for token in TOKENS.values() if token in log]
    assert leaked == [], log
    assert log.count(lines_for) >= len(TOKENS), log  # every request was logged
    assert "GET /invitation/[redacted] HTTP/1.1" in log
    assert "GET /password-reset/[redacted] HTTP/1.1" in log
    assert "GET /security/email/confirm/[redacted] HTTP/1.1" in log
    assert "GET /contacts/confirm/[redacted] HTTP/1.1" in log
    assert "GET /login/?token=[redacted] HTTP/1.1" in log
    assert "GET /ownership/[redacted] HTTP/1.1" in log
    assert "GET /billing/sandbox/tokens/?[redacted] HTTP/1.1" in log
    assert "GET /invitation/accept/?[redacted] HTTP/1.1" in log


def test_runserver_access_log_has_no_token(serve: Starter, tmp_path: Path) -> None:
    """``make dev``'s server, with the local settings (DEBUG on, as a developer runs it)."""
    port = _free_port()
    output = tmp_path / "runserver.log"
    serve(
        [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"],
        "config.settings.local",
        port,
        output,
    )
    _request_every_token_link(port)
    time.sleep(0.5)
    log = output.read_text()
    _assert_redacted(log, lines_for='"GET /')
    assert "Not Found: /no-such-page/invitation/[redacted]" in log  # django.request, too


def test_gunicorn_access_log_has_no_token(serve: Starter, tmp_path: Path) -> None:
    """Production's server with the shipped config, started from another directory."""
    port = _free_port()
    access, errors = tmp_path / "access.log", tmp_path / "gunicorn.log"
    serve(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            str(GUNICORN_CONF),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--no-control-socket",
            "--access-logfile",
            str(access),
            # The default format plus what a careless operator might add: the headers
            # that carry credentials.
            "--access-logformat",
            '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" '
            'auth="%({authorization}i)s" cookie="%({cookie}i)s"',
        ],
        "config.settings.test",
        port,
        errors,
    )
    _request_every_token_link(port, headers=CREDENTIALS)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and access.read_text().count('"GET /') < len(TOKENS):
        time.sleep(0.2)
    log = access.read_text()
    _assert_redacted(log, lines_for='"GET /')
    assert "[redacted]" in log
    assert not [secret for secret in CREDENTIALS.values() if secret.split("=")[-1] in log]
    assert log.count('auth="[redacted]" cookie="[redacted]"') >= len(TOKENS), log
    gunicorn_log = errors.read_text()
    assert "Starting gunicorn" in gunicorn_log
    assert not [token for token in TOKENS.values() if token in gunicorn_log], gunicorn_log
