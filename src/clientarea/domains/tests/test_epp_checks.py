"""`manage.py check --deploy` reports a registry connection that cannot work or is unsafe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core import checks

from clientarea.domains.checks import EPP_DRIVER, epp_settings_check


@pytest.fixture
def epp_configured(settings: Any, tmp_path: Path) -> Any:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_text("cert")
    key.write_text("key")
    settings.DOMAINS_REGISTRAR_DRIVER = EPP_DRIVER
    settings.EPP_HOST = "epp.registry.test"
    settings.EPP_CLIENT_ID = "registrar1"
    settings.EPP_PASSWORD = "s3cret-pass"
    settings.EPP_CERT_FILE = str(cert)
    settings.EPP_KEY_FILE = str(key)
    settings.EPP_CA_FILE = ""
    settings.EPP_VERIFY_TLS = True
    settings.DEMO_MODE = False
    return settings


def ids(settings: Any) -> list[str]:
    return sorted(error.id or "" for error in epp_settings_check())


def test_a_complete_configuration_passes(epp_configured: Any) -> None:
    assert ids(epp_configured) == []


def test_nothing_is_checked_for_another_driver(epp_configured: Any) -> None:
    epp_configured.DOMAINS_REGISTRAR_DRIVER = "clientarea.domains.drivers.LocalRegistrarDriver"
    epp_configured.EPP_HOST = ""
    assert ids(epp_configured) == []


@pytest.mark.parametrize("name", ["EPP_HOST", "EPP_CLIENT_ID", "EPP_PASSWORD"])
def test_a_missing_connection_setting_is_an_error(epp_configured: Any, name: str) -> None:
    setattr(epp_configured, name, "")
    errors = epp_settings_check()
    assert [e.id for e in errors] == ["domains.E001"]
    assert name in errors[0].msg


@pytest.mark.parametrize("name", ["EPP_CERT_FILE", "EPP_KEY_FILE"])
def test_a_missing_or_unreadable_certificate_is_an_error(epp_configured: Any, name: str) -> None:
    setattr(epp_configured, name, "")
    assert ids(epp_configured) == ["domains.E002"]
    setattr(epp_configured, name, "/nonexistent/file.pem")
    assert ids(epp_configured) == ["domains.E003"]


def test_an_unreadable_ca_file_is_an_error(epp_configured: Any) -> None:
    epp_configured.EPP_CA_FILE = "/nonexistent/ca.pem"
    assert ids(epp_configured) == ["domains.E003"]


def test_tls_verification_off_is_an_error_unless_demo_mode(epp_configured: Any) -> None:
    epp_configured.EPP_VERIFY_TLS = False
    assert ids(epp_configured) == ["domains.E004"]
    epp_configured.DEMO_MODE = True
    assert ids(epp_configured) == []


def test_the_check_runs_with_deploy_only(epp_configured: Any) -> None:
    epp_configured.EPP_PASSWORD = ""
    deploy = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    assert any(e.id == "domains.E001" for e in deploy)
    plain = checks.run_checks(tags=[checks.Tags.security])
    assert not any(e.id == "domains.E001" for e in plain)


@pytest.mark.parametrize("password", ["short", "x" * 17])
def test_a_password_the_epp_schema_does_not_allow_is_a_warning(
    epp_configured: Any, password: str
) -> None:
    epp_configured.EPP_PASSWORD = password
    assert ids(epp_configured) == ["domains.W001"]
