"""The service layer with the real WHM driver against the local WHM server: the panel's
password-strength answer becomes the form error, an unanswered change stays pending and
the worker settles it by asking the panel, the summary and the login come from WHM."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from clientarea.accounts.models import Account
from clientarea.accounts.tests.factories import UserFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.core.models import PendingChange
from clientarea.core.outside import pending_changes_reconcile_due
from clientarea.hosting import services
from clientarea.hosting.models import PanelServer, Service

from .factories import SERVICE_PASSWORD, ServiceFactory
from .whm_server import WEAK_PASSWORD, TlsFiles, WhmTestServer, make_tls

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Granite-Kettle-Orbit-Lantern-71"
WHM = "clientarea.hosting.whm.WhmPanelDriver"


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("whm-services-tls"))


@pytest.fixture
def whm(tls: TlsFiles, settings: Any) -> Iterator[WhmTestServer]:
    settings.HOSTING_PANEL_DRIVER = WHM
    settings.OUTSIDE_CALL_TIMEOUT_SECONDS = 0.4
    settings.OUTSIDE_CALL_BUDGET_SECONDS = 3.0
    settings.OUTSIDE_CALL_BACKOFF_SECONDS = 0.01
    server = WhmTestServer(tls, hang_seconds=3.0).start()
    server.add_account("bob", password=SERVICE_PASSWORD)
    yield server
    server.stop()
    assert server.errors == []


@pytest.fixture
def service(account: Account, whm: WhmTestServer, tls: TlsFiles) -> Service:
    panel = PanelServer(name="web1", hostname="127.0.0.1", port=whm.port, ca_file=tls.ca_file)
    panel.set_api_token(whm.token)
    panel.save()
    return ServiceFactory(account=account, server=panel, username="bob", domain="bob.test")


def _due_now() -> None:
    PendingChange.objects.update(next_check_at=timezone.now() - timedelta(seconds=1))


def _stored(service: Service) -> str:
    return Service.objects.get(pk=service.pk).decrypt_password()


def test_a_password_change_reaches_the_panel(
    account: Account, whm: WhmTestServer, service: Service
) -> None:
    outcome = services.service_password_change(
        service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
    )

    assert not outcome.pending
    assert whm.accounts["bob"].password == NEW_PASSWORD == _stored(service)


def test_the_panels_strength_answer_is_the_form_error_word_for_word(
    account: Account, whm: WhmTestServer, service: Service
) -> None:
    weak_for_cpanel = "qzvtrmwplkxjhgd"  # long enough for our rules, too plain for cPanel's

    with pytest.raises(ValidationError) as invalid:
        services.service_password_change(
            service=service, access=access_of(account.owner, account), new_password=weak_for_cpanel
        )

    assert invalid.value.messages == [WEAK_PASSWORD.format(strength=65)]
    assert _stored(service) == SERVICE_PASSWORD and whm.accounts["bob"].password == SERVICE_PASSWORD
    assert PendingChange.objects.get().state == "failed"


def test_an_unanswered_password_change_is_pending_then_settled_by_the_worker(
    account: Account, whm: WhmTestServer, service: Service
) -> None:
    whm.fail("drop_after", only={"passwd"})  # the panel takes it, the answer never comes

    outcome = services.service_password_change(
        service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
    )

    assert outcome.pending
    assert _stored(service) == SERVICE_PASSWORD  # not "changed" until the panel says so
    assert not AuditEvent.objects.filter(action="service.password_changed").exists()

    whm.heal()
    _due_now()
    assert pending_changes_reconcile_due()["done"] == 1
    assert _stored(service) == NEW_PASSWORD == whm.accounts["bob"].password


def test_a_suspension_left_pending_is_read_back_from_the_panel(
    whm: WhmTestServer, service: Service
) -> None:
    staff = UserFactory(is_staff=True, is_superuser=True)
    whm.fail("drop_after", only={"suspendacct"})  # suspended on WHM, no answer came

    outcome = services.service_suspend(service=service, staff=staff, reason="Nonpayment")

    assert outcome.pending
    assert Service.objects.get(pk=service.pk).status == Service.Status.ACTIVE
    assert whm.accounts["bob"].suspended

    whm.heal()
    _due_now()
    assert pending_changes_reconcile_due()["done"] == 1  # accountsummary says suspended
    assert Service.objects.get(pk=service.pk).status == Service.Status.SUSPENDED


def test_the_summary_and_the_login_come_from_whm(
    account: Account, whm: WhmTestServer, service: Service
) -> None:
    summary = services.service_panel_summary(service)
    url = services.service_panel_login(service=service, access=access_of(account.owner, account))

    assert summary is not None and summary.disk_used_mb == 250.0
    assert summary.bandwidth_used_mb == 1536.0
    assert url == whm.session_urls[-1]
    event = AuditEvent.objects.get(action="service.panel_login")
    assert url not in str(event.changes) and url not in event.target_label
