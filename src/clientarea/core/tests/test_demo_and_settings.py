from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from clientarea.accounts.models import Account, User

ROOT = Path(__file__).resolve().parents[4]


@pytest.mark.django_db
def test_demo_data_loads_once_and_its_logins_work(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("load_demo")
    call_command("load_demo")
    out = capsys.readouterr().out
    assert "Demo data already loaded." in out
    assert "owner@example.com" in out
    assert User.objects.filter(email="owner@example.com").count() == 1
    assert Account.objects.filter(owner__email="owner@example.com").count() == 2
    from clientarea.core.demo import DEMO_PASSWORD

    assert User.objects.get(email="accountant@example.com").check_password(DEMO_PASSWORD)


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {
        k: v
        for k, v in os.environ.items()
        # The browser tests' async-unsafe switch must not leak into a production check.
        if k not in {"SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    full_env.update(env, DJANGO_SETTINGS_MODULE="config.settings.production")
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_refuse_to_start_without_a_real_secret_key() -> None:
    result = _manage("check")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_pass_check_deploy_without_warnings() -> None:
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY="x" * 20 + "-production-secret-key-for-the-check-" + "y" * 20,
        FIELD_ENCRYPTION_KEYS="Zmlyc3Qta2V5LWZvci10ZXN0cy0zMi1ieXRlcy1vayE=",
        ALLOWED_HOSTS="clients.example.com",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout
