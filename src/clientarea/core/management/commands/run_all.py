"""`make run`: the web server and the background worker together; Ctrl-C stops both."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the development web server and the outbox worker until interrupted."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000")

    def handle(self, *args: Any, addrport: str = "127.0.0.1:8000", **options: Any) -> None:
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        # Installed explicitly: a shell may have started us with SIGINT ignored.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop)
        children = [
            subprocess.Popen([sys.executable, manage, "run_worker"]),  # noqa: S603
            subprocess.Popen([sys.executable, manage, "runserver", "--noreload", addrport]),  # noqa: S603
        ]
        try:
            while not stopping and all(child.poll() is None for child in children):
                time.sleep(0.3)
        finally:
            for child in children:
                if child.poll() is None:
                    child.terminate()
            for child in children:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
        self.stdout.write("Web server and worker stopped.")
