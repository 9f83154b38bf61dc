"""`make run` and `make dev`: the web server and the background worker together; Ctrl-C
stops both.

`make run` serves with gunicorn and ``src/config/gunicorn.conf.py``, as production does
(several processes, WhiteNoise's static files, the redacted access log); `make dev`
(``--dev``) with Django's ``runserver``, which reloads itself when the code changes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

GUNICORN_CONF = Path(settings.BASE_DIR) / "src" / "config" / "gunicorn.conf.py"


def split_addrport(addrport: str) -> tuple[str, int]:
    """("127.0.0.1", 8000) from "127.0.0.1:8000", "[::1]:8000" or "8000"."""
    host, _, port = addrport.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"{addrport!r} is not an address and port such as 127.0.0.1:8000.")
    return host or "127.0.0.1", int(port)


class Command(BaseCommand):
    help = (
        "Run the web server (gunicorn; runserver with --dev) and the background worker "
        "until interrupted."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")
        parser.add_argument(
            "--dev",
            action="store_true",
            help="Django's runserver, reloading when the code changes, instead of gunicorn.",
        )

    def handle(
        self, *args: Any, addrport: str = "127.0.0.1:8000", dev: bool = False, **options: Any
    ) -> None:
        host, port = split_addrport(addrport)
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        # The server and the worker build emailed links from SITE_URL, whose default
        # follows PORT: the port served here (an explicit SITE_URL still wins).
        env = {**os.environ, "PORT": str(port)}
        if dev:
            server = [sys.executable, manage, "runserver", addrport]
        else:
            bind = f"[{host.strip('[]')}]:{port}" if ":" in host.strip("[]") else f"{host}:{port}"
            server = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), "--bind", bind]
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        # Installed explicitly: a shell may have started us with SIGINT ignored.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
        children = [
            subprocess.Popen([sys.executable, manage, "run_worker"], env=env),  # noqa: S603
            # runserver's reloader runs the server in a child process of its own: in a
            # process group of their own, both are stopped together.
            subprocess.Popen(server, env=env, start_new_session=dev),  # noqa: S603
        ]
        try:
            while not stopping and all(child.poll() is None for child in children):
                time.sleep(0.3)
        finally:
            for child in children:
                if child.poll() is None:
                    if dev and child is children[-1]:
                        os.killpg(child.pid, signal.SIGTERM)
                    else:
                        child.terminate()
            for child in children:
                try:
                    # gunicorn lets requests in progress finish (graceful_timeout).
                    child.wait(timeout=25)
                except subprocess.TimeoutExpired:
                    child.kill()
        self.stdout.write("Web server and worker stopped.")
