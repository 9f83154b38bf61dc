from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import Client
from django_otp.oath import totp

from clientarea.accounts.tests.factories import TEST_PASSWORD, UserFactory
from clientarea.security import demo

pytestmark = pytest.mark.django_db


def test_the_demo_partner_logs_in_with_the_documented_totp_secret() -> None:
    """The README's demo secret works in the two-step login (ASVS 6.3.3)."""
    import base64

    partner = UserFactory(email="partner@example.com")
    demo.load(SimpleNamespace(partner=partner))
    client = Client()
    client.post("/login/", {"username": "partner@example.com", "password": TEST_PASSWORD})
    assert "_auth_user_id" not in client.session
    code = f"{totp(base64.b32decode(demo.DEMO_TOTP_SECRET)):06d}"
    assert client.post("/login/", {"token": code}).status_code == 302
    assert client.session["_auth_user_id"] == str(partner.pk)
