"""``check --deploy`` with the WHM driver, and the back office's control-panel servers:
the API token is write-only and TLS verification stays on for real customers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.urls import reverse

from clientarea.accounts.tests.factories import UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.hosting.checks import panel_servers_check
from clientarea.hosting.models import PanelServer

pytestmark = pytest.mark.django_db

WHM = "clientarea.hosting.whm.WhmPanelDriver"
TOKEN = "ABCDEF0123456789ABCDEF0123456789"


@pytest.fixture
def whm_driver(settings: Any) -> None:
    settings.HOSTING_PANEL_DRIVER = WHM
    settings.DEMO_MODE = False


def server(**fields: Any) -> PanelServer:
    token = fields.pop("token", TOKEN)
    panel = PanelServer(name=fields.pop("name", "web1"), hostname="web1.example.net", **fields)
    panel.set_api_token(token)
    panel.save()
    return panel


def ids() -> list[str]:
    return [m.id or "" for m in panel_servers_check()]


# --- check --deploy ---------------------------------------------------------------------------


def test_nothing_to_say_with_the_local_driver(settings: Any) -> None:
    settings.HOSTING_PANEL_DRIVER = "clientarea.hosting.drivers.LocalPanelDriver"
    assert panel_servers_check() == []


def test_no_server_at_all_is_a_warning(whm_driver: None) -> None:
    (message,) = panel_servers_check()
    assert message.id == "hosting.W101" and message.level == checks.WARNING


def test_a_well_configured_server_passes(whm_driver: None) -> None:
    server()
    assert panel_servers_check() == []


def test_a_server_without_token_is_an_error(whm_driver: None) -> None:
    panel = server(token="")
    (message,) = panel_servers_check()
    assert message.id == "hosting.E101" and message.level == checks.ERROR
    assert message.obj == panel and "web1" in message.msg


def test_verification_off_is_an_error_unless_demo(whm_driver: None, settings: Any) -> None:
    server(verify_tls=False)
    assert ids() == ["hosting.E102"]

    settings.DEMO_MODE = True
    assert ids() == []


def test_a_missing_ca_bundle_is_an_error(whm_driver: None, tmp_path: Path) -> None:
    server(ca_file=str(tmp_path / "missing.pem"))
    assert ids() == ["hosting.E103"]


def test_check_deploy_reports_it(whm_driver: None) -> None:
    """Registered from HostingConfig.ready under the deploy tag: ``check --deploy`` fails."""
    server(token="")
    with pytest.raises(SystemCheckError, match=r"hosting\.E101"):
        call_command("check", "--deploy", "--fail-level", "ERROR", tags=["security"])


# --- the back office ----------------------------------------------------------------------------


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def form_data(**extra: Any) -> dict[str, Any]:
    return {
        "name": "web1",
        "hostname": "web1.example.net",
        "port": "2087",
        "api_user": "root",
        "verify_tls": "on",
        "ca_file": "",
        "new_api_token": TOKEN,
        **extra,
    }


def test_staff_add_a_server_with_a_write_only_token(staff_client: Client) -> None:
    response = staff_client.post(reverse("admin:hosting_panelserver_add"), form_data())

    assert response.status_code == 302, response.content.decode()[:2000]
    panel = PanelServer.objects.get(name="web1")
    assert panel.api_token() == TOKEN and TOKEN not in panel.api_token_ciphertext
    for url in (
        reverse("admin:hosting_panelserver_change", args=[panel.pk]),
        reverse("admin:hosting_panelserver_changelist"),
    ):
        body = staff_client.get(url).content.decode()
        assert "web1" in body and "yes (encrypted)" in body
        assert TOKEN not in body and panel.api_token_ciphertext not in body
    event = AuditEvent.objects.get(action="panel_server.created")
    assert event.is_staff_action and "api_token" in event.changes["fields"]
    assert TOKEN not in str(event.changes)


def test_editing_without_a_token_keeps_the_stored_one(staff_client: Client) -> None:
    panel = server()
    url = reverse("admin:hosting_panelserver_change", args=[panel.pk])

    response = staff_client.post(url, form_data(new_api_token="", port="2088"))

    assert response.status_code == 302, response.content.decode()[:2000]
    panel.refresh_from_db()
    assert panel.port == 2088 and panel.api_token() == TOKEN


def test_a_new_server_needs_a_token(staff_client: Client) -> None:
    response = staff_client.post(
        reverse("admin:hosting_panelserver_add"), form_data(new_api_token="")
    )

    assert response.status_code == 200
    assert "Paste the server&#x27;s API token." in response.content.decode()
    assert not PanelServer.objects.exists()


def test_verification_cannot_be_turned_off_for_real_customers(
    staff_client: Client, settings: Any
) -> None:
    settings.DEBUG = False
    settings.DEMO_MODE = False
    data = form_data()
    del data["verify_tls"]  # an unticked box

    response = staff_client.post(reverse("admin:hosting_panelserver_add"), data)

    assert response.status_code == 200
    assert "TLS verification stays on for real customers" in response.content.decode()
    assert not PanelServer.objects.exists()

    settings.DEMO_MODE = True
    response = staff_client.post(reverse("admin:hosting_panelserver_add"), data)
    assert response.status_code == 302
    assert PanelServer.objects.get().verify_tls is False


def test_the_ca_bundle_must_exist(staff_client: Client, tmp_path: Path) -> None:
    response = staff_client.post(
        reverse("admin:hosting_panelserver_add"), form_data(ca_file=str(tmp_path / "nope.pem"))
    )
    assert "No such file on this server" in response.content.decode()

    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    response = staff_client.post(
        reverse("admin:hosting_panelserver_add"), form_data(ca_file=str(bundle))
    )
    assert response.status_code == 302


@pytest.mark.parametrize("hostname", ["https://web1.example.net", "web1.example.net:2087", "a b"])
def test_the_host_name_is_a_host_name(staff_client: Client, hostname: str) -> None:
    response = staff_client.post(
        reverse("admin:hosting_panelserver_add"), form_data(hostname=hostname)
    )
    assert "Enter the host name alone" in response.content.decode()
    assert not PanelServer.objects.exists()


def test_the_host_name_is_kept_lower_case(staff_client: Client) -> None:
    response = staff_client.post(
        reverse("admin:hosting_panelserver_add"), form_data(hostname="Web1.Example.NET.")
    )
    assert response.status_code == 302
    assert PanelServer.objects.get().hostname == "web1.example.net"
