"""Serving like production (issue 15): SQLite in WAL mode with a busy timeout, PORT making
SITE_URL's default, the database cache by default, and what `make run` / `make dev`
start (the servers themselves are started for real in acceptance/test_make_run.py)."""

from __future__ import annotations

import runpy
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections
from django.db.backends.sqlite3.base import DatabaseWrapper
from django.test import override_settings

from clientarea.core.apps import _create_cache_table
from clientarea.core.management.commands import run_all

ROOT = Path(__file__).resolve().parents[4]
BASE_SETTINGS = ROOT / "src" / "config" / "settings" / "base.py"


def _base_settings(monkeypatch: pytest.MonkeyPatch, **environ: str) -> dict[str, Any]:
    """The base settings as a fresh process would read them with this environment."""
    for name in ("PORT", "SITE_URL", "CACHE_URL", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(BASE_SETTINGS))


# --- SQLite ----------------------------------------------------------------------------------


def test_a_new_sqlite_connection_is_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    """Every connection the settings make: the web server's processes and the worker
    share the file (readers do not wait for the writer; a writer waits for another)."""
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite connection options")
    probe = DatabaseWrapper(
        {**connections.settings["default"], "NAME": str(tmp_path / "probe.sqlite3")}, "probe"
    )
    # How Django opens every connection (its options and init_command), on a file.
    raw = probe.get_new_connection(probe.get_connection_params())
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA busy_timeout").fetchone()[0] == 20_000  # milliseconds
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        raw.close()


def test_the_sqlite_options_are_set_for_any_sqlite_database_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    options = _base_settings(monkeypatch, DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}")[
        "DATABASES"
    ]["default"]["OPTIONS"]
    assert options["timeout"] == 20
    assert "journal_mode=WAL" in options["init_command"]
    postgres = _base_settings(monkeypatch, DATABASE_URL="postgres://u:p@db.invalid:5432/c")
    assert "init_command" not in postgres["DATABASES"]["default"].get("OPTIONS", {})


# --- PORT and SITE_URL ---------------------------------------------------------------------


def test_port_makes_site_urls_default_and_an_explicit_site_url_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _base_settings(monkeypatch)["SITE_URL"] == "http://127.0.0.1:8000"
    assert _base_settings(monkeypatch, PORT="8080")["SITE_URL"] == "http://127.0.0.1:8080"
    explicit = _base_settings(monkeypatch, PORT="8080", SITE_URL="https://clients.example.com/")
    assert explicit["SITE_URL"] == "https://clients.example.com"
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="PORT must be a port number, not 'http'"):
        _base_settings(monkeypatch, PORT="http")


def test_make_run_and_make_dev_pass_the_port_to_everything_they_start() -> None:
    for target, server in (
        ("run", "run_all 127.0.0.1:8080"),
        ("dev", "run_all --dev 127.0.0.1:8080"),
    ):
        dry_run = subprocess.run(
            ["make", "-n", target, "PORT=8080"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"PORT=8080 .venv/bin/python manage.py {server}" in dry_run, dry_run
        assert "PORT=8080 .venv/bin/python manage.py load_demo" in dry_run, dry_run


class _Exited:
    """A child process that has already exited: run_all stops at once."""

    started: list[tuple[list[str], dict[str, str]]] = []

    def __init__(self, argv: list[str], env: dict[str, str], **kwargs: Any) -> None:
        self.pid = 0
        _Exited.started.append((argv, env))

    def poll(self) -> int:
        return 0

    def wait(self, timeout: float | None = None) -> int:
        return 0


@pytest.mark.parametrize("dev", [False, True])
def test_run_all_starts_gunicorn_or_runserver_and_the_worker_on_the_port(
    monkeypatch: pytest.MonkeyPatch, dev: bool
) -> None:
    _Exited.started = []
    monkeypatch.setattr(run_all.subprocess, "Popen", _Exited)
    monkeypatch.delenv("PORT", raising=False)
    run_all.Command().handle(addrport="0.0.0.0:8123", dev=dev)
    (worker, worker_env), (server, server_env) = _Exited.started
    assert worker[-1] == "run_worker"
    assert worker_env["PORT"] == server_env["PORT"] == "8123"  # links follow the port
    if dev:
        assert server[-2:] == ["runserver", "0.0.0.0:8123"]  # reloading: no --noreload
    else:
        assert server[1:5] == ["-m", "gunicorn", "-c", str(run_all.GUNICORN_CONF)]
        assert server[-2:] == ["--bind", "0.0.0.0:8123"]


def test_run_all_refuses_a_bad_address() -> None:
    from django.core.management.base import CommandError

    for bad in ("localhost", "127.0.0.1:http", "127.0.0.1:70000"):
        with pytest.raises(CommandError, match="is not an address and port"):
            run_all.split_addrport(bad)
    assert run_all.split_addrport("[::1]:9000") == ("[::1]", 9000)
    assert run_all.split_addrport("9000") == ("127.0.0.1", 9000)


def test_the_gunicorn_config_suits_sqlite_and_logs_without_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf_path = ROOT / "src" / "config" / "gunicorn.conf.py"
    for name in ("DATABASE_URL", "WEB_CONCURRENCY", "HOST", "PORT"):
        monkeypatch.delenv(name, raising=False)
    conf = runpy.run_path(str(conf_path))
    assert (conf["workers"], conf["worker_class"], conf["threads"]) == (2, "gthread", 4)
    assert conf["bind"] == ["127.0.0.1:8000"]  # never every address by default
    assert conf["accesslog"] == "-"
    assert conf["logger_class"] == "clientarea.security.gunicorn_logger.RedactingLogger"
    assert conf["timeout"] > settings.OUTSIDE_CALL_BUDGET_SECONDS
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@db.invalid/c")
    monkeypatch.setenv("PORT", "8080")
    conf = runpy.run_path(str(conf_path))
    assert conf["workers"] >= 3 and conf["bind"] == ["127.0.0.1:8080"]


# --- the cache -----------------------------------------------------------------------------


def test_the_cache_is_the_database_by_default_and_redis_needs_its_library(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caches = _base_settings(monkeypatch)["CACHES"]["default"]
    assert caches == {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "clientarea_cache",
        "OPTIONS": {"MAX_ENTRIES": 50_000},
    }
    assert "LocMemCache" in settings.CACHES["default"]["BACKEND"]  # the tests' own
    import importlib.util

    for url, library in (("rediscache://127.0.0.1:6379/1", "redis"),
                         ("pymemcache://127.0.0.1:11211", "pymemcache")):  # fmt: skip
        if importlib.util.find_spec(library) is not None:
            continue
        from django.core.exceptions import ImproperlyConfigured

        with pytest.raises(ImproperlyConfigured, match=f"pip install {library}"):
            _base_settings(monkeypatch, CACHE_URL=url)


@pytest.mark.django_db
def test_migrate_makes_the_database_caches_table() -> None:
    database_cache = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "clientarea_cache_probe",
        }
    }
    # (The table goes with the test's transaction: DDL is transactional on SQLite and
    # PostgreSQL.)
    with override_settings(CACHES=database_cache):
        _create_cache_table(using="default")  # what migrate's post_migrate runs
        _create_cache_table(using="default")  # and again: nothing to do
        cache.set("probe", 41)
        assert cache.get("probe") == 41
        assert "clientarea_cache_probe" in connection.introspection.table_names()
