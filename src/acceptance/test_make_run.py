"""What `make run` does, end to end on a fresh database: migrate, load the demo, serve the
login page (with gunicorn; `make dev` with runserver), and run the worker (which delivers
an email queued before)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fresh_database_migrates_loads_demo_and_serves_login(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}",
        "EMAIL_URL": f"filemail://{tmp_path / 'mail'}",
        # The demo's files (a ticket's attachment) go here, not into the checkout's var/:
        # another test run, or another test worker, may be using that at the same moment.
        "MEDIA_ROOT": str(tmp_path / "media"),
        "DEMO_MAIL_DIR": str(tmp_path / "demo-mail"),
    }
    manage = [sys.executable, str(ROOT / "manage.py")]

    def run(*args: str) -> str:
        result = subprocess.run(
            [*manage, *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    run("migrate", "--noinput", "-v0")
    out = run("load_demo")
    assert "owner@example.com" in out and "Demo data loaded." in out
    assert "Demo data already loaded." in run("load_demo")
    # migrate also made the database cache's table (CACHE_URL's default); and an email
    # for the worker to deliver (one process for both: each start of Django takes seconds).
    run(
        "shell",
        "-c",
        "from django.core.cache import cache; cache.set('p', 1); assert cache.get('p');"
        "from clientarea.notifications.services import email_queue;"
        "email_queue(to_email='probe@example.com', subject='Probe', body='Delivered.')",
    )

    # What `make run` starts (gunicorn and the worker, which delivers the email), then
    # `make dev` (runserver).
    _serve_and_stop(manage, env, tmp_path / "run.log", dev=False, mail=tmp_path / "mail")
    delivered = "".join(p.read_text() for p in (tmp_path / "mail").iterdir())
    assert "Subject: Probe" in delivered and "probe@example.com" in delivered
    _serve_and_stop(manage, env, tmp_path / "dev.log", dev=True)


def _delivered(mail: Path) -> bool:
    return mail.is_dir() and any("Subject: Probe" in p.read_text() for p in mail.iterdir())


def _serve_and_stop(
    manage: list[str], env: dict[str, str], log: Path, *, dev: bool, mail: Path | None = None
) -> None:
    port = _free_port()
    # The output goes to a file, read while it runs: Ctrl-C waits for the worker to have
    # started (on a busy machine it can start after the web server answers; stopped
    # before it installed its handlers, it would end without a word).
    output = log.open("w")
    server = subprocess.Popen(
        [*manage, "run_all", *(["--dev"] if dev else []), f"127.0.0.1:{port}"],
        env={**env, "PYTHONUNBUFFERED": "1"},  # each line in the file as it is written
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body = ""
        # Starting takes a few seconds, far longer on a busy machine (the suite runs on two
        # pytest-xdist workers; a fixed 100 tries, about 20 s, once ran out): wait until
        # it answers, it exits, or two minutes have passed.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.2)
        assert server.poll() is None, "run_all exited before serving the login page"
        assert "Log in to the Client Area" in body
        # Static files come from the app itself (WhiteNoise), under either server.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/js/menus.js") as r:
            assert r.status == 200 and b"Escape" in r.read()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "Worker started" not in log.read_text():
            time.sleep(0.2)
        assert "Worker started" in log.read_text()
        if mail is not None:  # the worker's first turn delivers what is due
            while time.monotonic() < deadline and not _delivered(mail):
                time.sleep(0.2)
            assert _delivered(mail), log.read_text()
        server.send_signal(signal.SIGINT)  # Ctrl-C
        server.wait(timeout=60)
        out = log.read_text()
        assert "Worker stopped." in out and "Web server and worker stopped." in out
        if dev:
            assert "StatReloader" in out or "Watching for file changes" in out, out
        else:
            # gunicorn, with its access log on.
            assert "Starting gunicorn" in out and "gthread" in out, out
            assert '"GET /login/ HTTP/1.1" 200' in out, out
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        output.close()
