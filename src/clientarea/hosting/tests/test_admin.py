"""The back office: staff create and edit services; the password is write-only."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account
from clientarea.accounts.tests.factories import UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.hosting.models import Service

from .factories import SERVICE_PASSWORD, ServiceFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def test_change_list_and_change_form_never_show_the_password(
    staff_client: Client, account: Account
) -> None:
    service: Service = ServiceFactory(account=account)
    token = Service.objects.get(pk=service.pk).password_ciphertext
    for url in (
        reverse("admin:hosting_service_changelist"),
        reverse("admin:hosting_service_changelist") + f"?q={service.username}",
        reverse("admin:hosting_service_change", args=[service.pk]),
    ):
        body = staff_client.get(url).content.decode()
        assert service.product_name in body
        assert SERVICE_PASSWORD not in body and token not in body, url
    change = reverse("admin:hosting_service_change", args=[service.pk])
    assert "yes (encrypted)" in staff_client.get(change).content.decode()
    empty: Service = ServiceFactory(account=account, password="")
    change = reverse("admin:hosting_service_change", args=[empty.pk])
    assert "yes (encrypted)" not in staff_client.get(change).content.decode()


def admin_data(account: Account, **extra: Any) -> dict[str, Any]:
    return {
        "account": account.pk,
        "product_name": "VPS 8 GB",
        "domain": "vps.example.com",
        "status": "active",
        "billing_cycle": "monthly",
        "amount": "24.00",
        "next_due_date": "2030-02-01",
        "server_hostname": "vps.example.com",
        "username": "root",
        **extra,
    }


def test_staff_create_a_service_with_a_write_only_password(
    staff_client: Client, account: Account
) -> None:
    response = staff_client.post(
        reverse("admin:hosting_service_add"),
        admin_data(account, new_password="Staff-set-password-42"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    service = Service.objects.get(product_name="VPS 8 GB")
    assert service.decrypt_password() == "Staff-set-password-42"
    event = AuditEvent.objects.get(action="service.created")
    assert event.is_staff_action and "Staff-set-password-42" not in str(event.changes)


def test_editing_without_a_password_keeps_the_stored_one(
    staff_client: Client, account: Account
) -> None:
    service = ServiceFactory(account=account)
    url = reverse("admin:hosting_service_change", args=[service.pk])
    response = staff_client.post(url, admin_data(account, status="suspended", new_password=""))
    assert response.status_code == 302
    fresh = Service.objects.get(pk=service.pk)
    assert fresh.status == "suspended"
    assert fresh.decrypt_password() == SERVICE_PASSWORD
    event = AuditEvent.objects.get(action="service.updated")
    assert "status" in event.changes["fields"] and "password" not in event.changes["fields"]


def test_staff_suspend_and_unsuspend_on_the_panel_from_the_change_list(
    staff_client: Client, account: Account, panel: Any
) -> None:
    service: Service = ServiceFactory(account=account)
    url = reverse("admin:hosting_service_changelist")
    form = {"action": "suspend_on_panel", "_selected_action": [service.pk]}
    # A suspension needs a reason: without one nothing is sent to the panel.
    response = staff_client.post(url, {**form, "reason": ""}, follow=True)
    assert "Give a reason" in response.content.decode() and panel.suspended == {}
    response = staff_client.post(url, {**form, "reason": "Abuse report #12"}, follow=True)
    # (The back office capitalises the first letter of each message.)
    assert f"{service}: suspended.".lower() in response.content.decode().lower()
    assert panel.suspended == {service.pk: "Abuse report #12"}
    assert Service.objects.get(pk=service.pk).status == Service.Status.SUSPENDED
    response = staff_client.post(
        url, {"action": "unsuspend_on_panel", "_selected_action": [service.pk]}, follow=True
    )
    assert f"{service}: unsuspended.".lower() in response.content.decode().lower()
    assert Service.objects.get(pk=service.pk).status == Service.Status.ACTIVE
    actions = list(
        AuditEvent.objects.filter(is_staff_action=True, action__startswith="service.s")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["service.suspended"]
    assert AuditEvent.objects.filter(action="service.unsuspended").count() == 1


def test_a_panel_refusal_in_the_back_office_is_a_message_not_a_change(
    staff_client: Client, account: Account, panel: Any
) -> None:
    service: Service = ServiceFactory(account=account)
    panel.refuse = "Account does not exist on this server."
    response = staff_client.post(
        reverse("admin:hosting_service_changelist"),
        {"action": "suspend_on_panel", "_selected_action": [service.pk], "reason": "Unpaid"},
        follow=True,
    )
    assert "Account does not exist on this server." in response.content.decode()
    assert Service.objects.get(pk=service.pk).status == Service.Status.ACTIVE
