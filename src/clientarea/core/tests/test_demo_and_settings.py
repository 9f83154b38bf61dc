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


PRODUCTION_SECRETS = {
    "SECRET_KEY": "x" * 20 + "-production-secret-key-for-the-check-" + "y" * 20,
    "FIELD_ENCRYPTION_KEYS": "Zmlyc3Qta2V5LWZvci10ZXN0cy0zMi1ieXRlcy1vayE=",
    "ALLOWED_HOSTS": "clients.example.com",
}


def test_production_refuses_the_stand_ins_without_demo_mode() -> None:
    result = _manage("check", **PRODUCTION_SECRETS)
    assert result.returncode != 0
    for stand_in in (
        "HOSTING_PANEL_DRIVER=clientarea.hosting.drivers.LocalPanelDriver",
        "DOMAINS_REGISTRAR_DRIVER=clientarea.domains.drivers.LocalRegistrarDriver",
        "BILLING_CARD_GATEWAY=sandbox",
    ):
        assert stand_in in result.stderr
    # A demonstration may run them, and says so on every page.
    assert _manage("check", DEMO_MODE="true", **PRODUCTION_SECRETS).returncode == 0


def test_production_with_real_outside_systems_passes_check_deploy_without_warnings(
    tmp_path: Path,
) -> None:
    """The real panel (WHM, one server with its API token), the real registry (EPP, with
    its certificate) and no card sandbox: `check --deploy` has nothing to report."""
    cert, key = tmp_path / "epp.crt", tmp_path / "epp.key"
    cert.write_text("certificate")
    key.write_text("key")
    env = {
        **PRODUCTION_SECRETS,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "HOSTING_PANEL_DRIVER": "clientarea.hosting.whm.WhmPanelDriver",
        "DOMAINS_REGISTRAR_DRIVER": "clientarea.domains.epp.EppRegistrarDriver",
        "EPP_HOST": "epp.registry.example",
        "EPP_CLIENT_ID": "registrar-1",
        "EPP_PASSWORD": "s3cret-Pass",
        "EPP_CERT_FILE": str(cert),
        "EPP_KEY_FILE": str(key),
        "BILLING_CARD_GATEWAY": "",
    }
    assert _manage("migrate", "--noinput", **env).returncode == 0
    add_server = (
        "from clientarea.hosting.models import PanelServer\n"
        "s = PanelServer(name='cp1', hostname='cp1.hosting.example')\n"
        "s.set_api_token('WHMTOKEN0123456789')\n"
        "s.save()"
    )
    assert _manage("shell", "-c", add_server, **env).returncode == 0
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **env)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout

    # The same deployment with TLS verification off at the registry is refused.
    result = _manage("check", "--deploy", **env, EPP_VERIFY_TLS="false")
    assert result.returncode != 0 and "EPP_VERIFY_TLS" in result.stderr + result.stdout
