"""The back office is guarded like the client area (issue 10, "one login for everyone").

Seen from the attacker's side: the admin has no login of its own to brute-force, staff
without two-factor see no admin page, the admin shows no TOTP secret or recovery code, and
a staff change to a customer's security is audited on the customer's accounts and emailed
to them (never silent).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client, override_settings
from django.urls import NoReverseMatch, reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.tests.factories import (
    TEST_PASSWORD,
    AccountFactory,
    MembershipFactory,
    UserFactory,
)
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail
from clientarea.security.models import RecoveryCode, TrackedSession
from clientarea.security.twofactor import totp_secret_base32, user_has_two_factor

from .factories import fresh_code, two_factor_on

pytestmark = pytest.mark.django_db

staff_two_factor_on = override_settings(STAFF_REQUIRE_TWO_FACTOR=True)


def _changelists() -> list[str]:
    return [
        reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist")
        for m in admin.site._registry
    ]


def admin_pages() -> list[str]:
    return ["/admin/", "/admin/accounts/", *_changelists()]


@pytest.fixture
def staff() -> User:
    return UserFactory(email="sam@staff.example", is_staff=True, is_superuser=True)


@pytest.fixture
def staff_2fa(staff: User) -> User:
    two_factor_on(staff)
    return staff


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# -- One login for everyone -------------------------------------------------------------


def test_admin_login_page_sends_to_the_client_area_login_keeping_a_safe_next() -> None:
    response = Client().get("/admin/login/?next=/admin/support/ticket/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/admin/support/ticket/"


def test_admin_login_drops_an_offsite_next() -> None:
    response = Client().get("/admin/login/?next=https://evil.example/admin/")
    assert response["Location"] == "/login/?next=/admin/"


def test_anonymous_admin_pages_end_at_the_client_area_login() -> None:
    response = Client().get("/admin/support/ticket/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/login/?next=")
    assert "Log in to the Client Area" in response.content.decode()


def test_a_correct_password_posted_to_admin_login_logs_nobody_in(staff: User) -> None:
    """The admin's own form (unthrottled, no two-factor) no longer checks passwords."""
    client = Client()
    for password in ["wrong"] * 35 + [TEST_PASSWORD]:
        response = client.post(
            "/admin/login/?next=/admin/", {"username": staff.email, "password": password}
        )
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/")["Location"].startswith("/admin/login/")


@staff_two_factor_on
def test_staff_log_in_through_the_client_area_login_with_the_two_factor_step(
    staff_2fa: User,
) -> None:
    device = TOTPDevice.objects.get(user=staff_2fa)
    client = Client()
    response = client.post(
        "/login/?next=/admin/", {"username": staff_2fa.email, "password": TEST_PASSWORD}
    )
    assert "_auth_user_id" not in client.session  # the code is asked first
    response = client.post("/login/", {"token": fresh_code(device)})
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    # The client area's session rules: the login is a tracked session.
    assert TrackedSession.objects.active().filter(user=staff_2fa).count() == 1


def test_admin_logout_is_the_client_area_logout(staff: User) -> None:
    client = client_for(staff)
    response = client.post("/admin/logout/")
    assert response.status_code == 302 and response["Location"] == reverse("accounts:login")
    assert "_auth_user_id" not in client.session
    ended = TrackedSession.objects.get(user=staff)
    assert ended.end_reason == TrackedSession.EndReason.LOGOUT


def test_admin_password_change_is_the_client_area_password_change(staff: User) -> None:
    response = client_for(staff).get("/admin/password_change/")
    assert response["Location"] == reverse("security:password_change")


# -- Staff need two-factor ----------------------------------------------------------------


@staff_two_factor_on
def test_staff_without_two_factor_open_no_admin_page(staff: User) -> None:
    client = client_for(staff)
    for url in admin_pages():
        response = client.get(url, follow=True)
        chain = [u for u, _ in response.redirect_chain]
        assert reverse("security:two_factor_setup") in chain, url
        assert b"Site administration" not in response.content
    messages = [str(m) for m in response.context["messages"]]
    assert any("back office needs two-factor" in m for m in messages)


@staff_two_factor_on
def test_staff_without_two_factor_cannot_post_admin_actions(staff: User) -> None:
    customer = UserFactory()
    two_factor_on(customer)
    client = client_for(staff)
    response = client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "two_factor_disable", "_selected_action": [customer.pk]},
    )
    assert response.status_code == 302
    assert user_has_two_factor(customer)


@staff_two_factor_on
def test_staff_with_two_factor_open_every_admin_page(staff_2fa: User) -> None:
    client = client_for(staff_2fa)
    for url in admin_pages():
        assert client.get(url).status_code == 200, url


def test_the_setting_off_lets_staff_without_two_factor_in(staff: User) -> None:
    with override_settings(STAFF_REQUIRE_TWO_FACTOR=False):
        assert client_for(staff).get("/admin/").status_code == 200


@staff_two_factor_on
def test_a_customer_with_two_factor_is_refused_the_back_office() -> None:
    customer = UserFactory()
    two_factor_on(customer)
    client = client_for(customer)
    for url in admin_pages():
        response = client.get(url, follow=True)
        assert response.status_code == 403, url


def test_production_settings_require_staff_two_factor_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib
    import sys

    monkeypatch.delenv("STAFF_REQUIRE_TWO_FACTOR", raising=False)
    monkeypatch.setenv("SECRET_KEY", "x" * 60)
    monkeypatch.setenv("FIELD_ENCRYPTION_KEYS", "Zmlyc3Qta2V5LWZvci10ZXN0cy0zMi1ieXRlcy1vayE=")
    # Production refuses the stand-in panel, registrar and card sandbox: real ones.
    monkeypatch.setenv("HOSTING_PANEL_DRIVER", "clientarea.hosting.whm.WhmPanelDriver")
    monkeypatch.setenv("DOMAINS_REGISTRAR_DRIVER", "clientarea.domains.epp.EppRegistrarDriver")
    monkeypatch.setenv("BILLING_CARD_GATEWAY", "")
    base = sys.modules.pop("config.settings.base", None)
    sys.modules.pop("config.settings.production", None)
    try:
        production = importlib.import_module("config.settings.production")
    finally:
        sys.modules.pop("config.settings.production", None)
        if base is not None:
            sys.modules["config.settings.base"] = base
    assert production.STAFF_REQUIRE_TWO_FACTOR is True
    assert production.OTP_ADMIN_HIDE_SENSITIVE_DATA is True


# -- No secret in the admin -----------------------------------------------------------------


@pytest.fixture
def customer_secrets() -> tuple[User, TOTPDevice, list[str]]:
    """A customer with two-factor on, and someone else half-way through setting it up."""
    customer = UserFactory(email="victim@example.com")
    device, codes = two_factor_on(customer)
    TOTPDevice.objects.create(user=UserFactory(), name="pending", confirmed=False)
    return customer, device, codes


def _secret_forms(device: TOTPDevice) -> list[str]:
    raw = device.bin_key
    return [
        device.key,
        device.key.upper(),
        totp_secret_base32(device),
        base64.b32encode(raw).decode(),
        "secret=",
        "otpauth://",
    ]


@staff_two_factor_on
def test_no_admin_page_shows_a_totp_secret_or_a_recovery_code(
    staff_2fa: User, customer_secrets: tuple[User, TOTPDevice, list[str]]
) -> None:
    customer, device, codes = customer_secrets
    secrets = _secret_forms(device) + codes + [c.replace("-", "") for c in codes]
    secrets += list(RecoveryCode.objects.filter(user=customer).values_list("digest", flat=True))
    client = client_for(staff_2fa)
    urls = [
        *admin_pages(),
        reverse("admin:otp_totp_totpdevice_change", args=[device.pk]),
        reverse("admin:otp_totp_totpdevice_history", args=[device.pk]),
        reverse("admin:otp_totp_totpdevice_changelist") + f"?q={customer.email}",
        reverse("admin:accounts_user_change", args=[customer.pk]),
        reverse("admin:accounts_user_change", args=[staff_2fa.pk]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        for secret in secrets:
            assert secret not in body, (url, secret)
    # django-otp's key and QR code views are gone.
    for name in ("otp_totp_totpdevice_config", "otp_totp_totpdevice_qrcode"):
        with pytest.raises(NoReverseMatch):
            reverse(f"admin:{name}", args=[device.pk])
    assert client.get(f"/admin/otp_totp/totpdevice/{device.pk}/config/").status_code != 200
    assert client.get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/").status_code != 200
    # Recovery codes are not in the back office at all.
    assert not admin.site.is_registered(RecoveryCode)


@staff_two_factor_on
def test_a_device_cannot_be_edited_or_deleted_silently_in_the_admin(
    staff_2fa: User, customer_secrets: tuple[User, TOTPDevice, list[str]]
) -> None:
    customer, device, _ = customer_secrets
    client = client_for(staff_2fa)
    change = reverse("admin:otp_totp_totpdevice_change", args=[device.pk])
    delete = reverse("admin:otp_totp_totpdevice_delete", args=[device.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    client.post(change, {"user": customer.pk, "name": "x", "confirmed": "", "key": "00" * 20})
    client.post(
        reverse("admin:otp_totp_totpdevice_changelist"),
        {"action": "delete_selected", "_selected_action": [device.pk], "post": "yes"},
    )
    client.post(reverse("admin:otp_totp_totpdevice_add"), {"user": customer.pk, "name": "x"})
    assert TOTPDevice.objects.filter(user=customer).count() == 1
    kept = TOTPDevice.objects.get(pk=device.pk)
    assert (kept.confirmed, kept.key, kept.name) == (True, device.key, device.name)


# -- Staff actions on a customer's security are audited and emailed -------------------------


@pytest.fixture
def customer(account: Account) -> User:
    """A sub-account of Acme who also owns a small account of their own, and whose access
    to a third account was revoked."""
    member = MembershipFactory(account=account, permissions=["invoices"]).user
    AccountFactory(owner=member, company_name="Member's own Ltd")
    MembershipFactory(account=AccountFactory(), user=member, status=Membership.Status.REVOKED)
    return member


def _staff_events(user: User, action: str) -> Any:
    return AuditEvent.objects.filter(action=action, target_id=str(user.pk), is_staff_action=True)


def _assert_audited_on_every_account_of(customer: User, action: str, staff: User) -> None:
    events = _staff_events(customer, action)
    owned = set(Account.objects.filter(owner=customer).values_list("pk", flat=True))
    usable = set(
        Membership.objects.usable().filter(user=customer).values_list("account_id", flat=True)
    )
    assert {e.account_id for e in events} == owned | usable
    assert len(owned | usable) == 2 and events.count() == 2
    assert all(e.actor_id == staff.pk for e in events)


def _emails_to(address: str) -> Any:
    return OutboxEmail.objects.filter(to_email=address)


def _sessions(user: User) -> tuple[Client, Client]:
    return client_for(user), client_for(user)


@staff_two_factor_on
def test_staff_turning_off_two_factor_is_audited_emailed_and_ends_sessions(
    staff_2fa: User, customer: User, account: Account
) -> None:
    two_factor_on(customer)
    phone = client_for(customer)
    OutboxEmail.objects.all().delete()
    response = client_for(staff_2fa).post(
        reverse("admin:accounts_user_changelist"),
        {"action": "two_factor_disable", "_selected_action": [customer.pk]},
    )
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=customer).exists()
    assert not RecoveryCode.objects.filter(user=customer).exists()
    _assert_audited_on_every_account_of(customer, "two_factor.disabled_by_staff", staff_2fa)
    assert OutboxEmail.objects.count() == 1
    (email,) = _emails_to(customer.email)
    assert "turned off two-factor" in email.subject
    assert TrackedSession.objects.active().filter(user=customer).count() == 0
    assert phone.get(reverse("security:security")).status_code == 302  # logged out
    # The owner's Activity Log shows it.
    log = client_for(account.owner)
    session = log.session
    session["current_account_id"] = account.pk
    session.save()
    page = log.get(reverse("audit:activity")).content.decode()
    assert "disabled by staff" in page and customer.email in page


@staff_two_factor_on
def test_staff_action_on_a_customer_without_two_factor_does_nothing(
    staff_2fa: User, customer: User
) -> None:
    OutboxEmail.objects.all().delete()
    client_for(staff_2fa).post(
        reverse("admin:accounts_user_changelist"),
        {"action": "two_factor_disable", "_selected_action": [customer.pk]},
    )
    assert not OutboxEmail.objects.exists()
    assert not _staff_events(customer, "two_factor.disabled_by_staff").exists()


@staff_two_factor_on
def test_staff_ending_a_customers_sessions_is_audited_and_emailed(
    staff_2fa: User, customer: User
) -> None:
    phone, laptop = _sessions(customer)
    OutboxEmail.objects.all().delete()
    staff_client = client_for(staff_2fa)
    staff_client.post(
        reverse("admin:accounts_user_changelist"),
        {"action": "sessions_end", "_selected_action": [customer.pk]},
    )
    assert TrackedSession.objects.active().filter(user=customer).count() == 0
    assert set(
        TrackedSession.objects.filter(user=customer).values_list("end_reason", flat=True)
    ) == {TrackedSession.EndReason.STAFF}
    for client in (phone, laptop):
        assert client.get(reverse("security:security")).status_code == 302
    _assert_audited_on_every_account_of(customer, "session.all_ended_by_staff", staff_2fa)
    assert OutboxEmail.objects.count() == 1 and _emails_to(customer.email).count() == 1
    # The staff member's own session is untouched.
    assert staff_client.get("/admin/").status_code == 200


def _user_form(user: User, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": "on",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
    }
    data.update(changes)
    return data


@staff_two_factor_on
def test_staff_changing_a_customers_email_goes_through_the_service(
    staff_2fa: User, customer: User
) -> None:
    old = customer.email
    phone = client_for(customer)
    OutboxEmail.objects.all().delete()
    response = client_for(staff_2fa).post(
        reverse("admin:accounts_user_change", args=[customer.pk]),
        _user_form(customer, email="New.Address@Example.com", first_name="Renamed"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    customer.refresh_from_db()
    assert (customer.email, customer.first_name) == ("new.address@example.com", "Renamed")
    _assert_audited_on_every_account_of(customer, "user.email_changed_by_staff", staff_2fa)
    event = _staff_events(customer, "user.email_changed_by_staff").first()
    assert event.changes == {"email": [old, "new.address@example.com"]}
    # One email, to the address the customer had (the one an attacker would not hold).
    assert OutboxEmail.objects.count() == 1
    (email,) = _emails_to(old)
    assert "new.address@example.com" in email.body_text
    assert TrackedSession.objects.active().filter(user=customer).count() == 0
    assert phone.get(reverse("security:security")).status_code == 302  # logged out


@staff_two_factor_on
def test_saving_a_customer_without_changing_the_email_sends_nothing(
    staff_2fa: User, customer: User
) -> None:
    OutboxEmail.objects.all().delete()
    client_for(staff_2fa).post(
        reverse("admin:accounts_user_change", args=[customer.pk]),
        _user_form(customer, first_name="Renamed"),
    )
    assert not OutboxEmail.objects.exists()
    assert not AuditEvent.objects.filter(is_staff_action=True, action__contains="email").exists()


@staff_two_factor_on
def test_staff_setting_a_customers_password_is_audited_and_emailed(
    staff_2fa: User, customer: User
) -> None:
    phone = client_for(customer)
    OutboxEmail.objects.all().delete()
    new_password = "another-long-password-for-tests-77"
    response = client_for(staff_2fa).post(
        reverse("admin:auth_user_password_change", args=[customer.pk]),
        {"password1": new_password, "password2": new_password, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    customer.refresh_from_db()
    assert customer.check_password(new_password)
    _assert_audited_on_every_account_of(customer, "user.password_changed_by_staff", staff_2fa)
    assert OutboxEmail.objects.count() == 1 and _emails_to(customer.email).count() == 1
    assert TrackedSession.objects.active().filter(user=customer).count() == 0
    assert phone.get(reverse("security:security")).status_code == 302  # logged out
