"""Real-browser tests: Playwright driving the system's Chromium, headless.

They run whenever Chromium is installed (`.ci/run` installs it) and are skipped with a
clear reason otherwise. Screenshots of every step are saved under
`test-artifacts/screenshots/` for people to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests
# make (fixtures, reading the outbox) are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def pytest_collection_modifyitems(config: Any, items: list[pytest.Item]) -> None:
    if Path(CHROMIUM).exists():
        return
    if os.environ.get("REQUIRE_BROWSER_TESTS"):
        raise pytest.UsageError(f"REQUIRE_BROWSER_TESTS is set but Chromium is missing: {CHROMIUM}")
    skip = pytest.mark.skip(
        reason=f"Chromium not found at {CHROMIUM}: browser tests skipped "
        "(install Debian's chromium, as .ci/run does, to run them)"
    )
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser(live_server: Any) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    _wait_for_live_server_requests(live_server)


def _wait_for_live_server_requests(live_server: Any, timeout: float = 30.0) -> None:
    """The live server answers each of the browser's connections in a thread of its own,
    which, when the browser hangs up, closes the in-memory SQLite connection it shares
    with the tests. The live server stops sharing that connection when it stops (right
    after this fixture: `browser` depends on `live_server`); a thread still closing then
    fails with "DatabaseWrapper objects created in a thread can only be used in that same
    thread". On a busy machine some were (seen with two pytest-xdist workers, each with
    its own Chromium and live server), so wait for them here, once the browser is closed.

    Only the live server's own: other local servers' request threads (the Stripe and WHM
    test servers', kept open by their clients' keep-alive connections) never end, and
    waiting for them held each test run up by the whole timeout (31 s of CI time)."""
    httpd = live_server.thread.httpd
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        # The server's ThreadingMixIn runs process_request_thread, bound to the server,
        # for each connection (a running thread still holds its target).
        target = getattr(thread, "_target", None)
        if getattr(target, "__self__", None) is httpd:
            thread.join(max(0.0, deadline - time.monotonic()))


class Shots:
    """Numbered screenshots of one journey."""

    def __init__(self, journey: str) -> None:
        self.dir = ARTIFACTS / journey
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.n = 0

    def __call__(self, page: Any, step: str) -> None:
        self.n += 1
        slug = re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")
        page.screenshot(path=str(self.dir / f"{self.n:02d}-{slug}.png"), full_page=True)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)


def assert_accessible(page: Any) -> None:
    """axe-core on the current page: no serious or critical violations."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [
        (v["id"], v["impact"], len(v["nodes"]))
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{page.url}: {bad}"
