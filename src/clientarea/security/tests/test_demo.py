from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from django.test import Client, override_settings
from django_otp.oath import totp

from clientarea.accounts.tests.factories import TEST_PASSWORD, UserFactory
from clientarea.security import demo

pytestmark = pytest.mark.django_db


def _code() -> str:
    return f"{totp(base64.b32decode(demo.DEMO_TOTP_SECRET)):06d}"


def test_the_demo_partner_logs_in_with_the_documented_totp_secret() -> None:
    """The README's demo secret works in the two-step login (ASVS 6.3.3)."""
    partner = UserFactory(email="partner@example.com")
    demo.load(SimpleNamespace(partner=partner, staff=UserFactory(is_staff=True)))
    client = Client()
    client.post("/login/", {"username": "partner@example.com", "password": TEST_PASSWORD})
    assert "_auth_user_id" not in client.session
    assert client.post("/login/", {"token": _code()}).status_code == 302
    assert client.session["_auth_user_id"] == str(partner.pk)


@override_settings(STAFF_REQUIRE_TWO_FACTOR=True)
def test_the_demo_staff_opens_the_back_office_with_the_documented_totp_secret() -> None:
    """`make run` keeps a working back-office login although staff need two-factor."""
    staff = UserFactory(email="staff@example.com", is_staff=True, is_superuser=True)
    demo.load(SimpleNamespace(partner=UserFactory(), staff=staff))
    client = Client()
    client.post(
        "/login/?next=/admin/", {"username": "staff@example.com", "password": TEST_PASSWORD}
    )
    response = client.post("/login/", {"token": _code()})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
