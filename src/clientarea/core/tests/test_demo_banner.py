"""DEMO_MODE says so on every page, the customer's and the back office's; without it,
nothing does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account
from clientarea.accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("demo", [True, False])
def test_the_demo_banner_follows_demo_mode(
    demo: bool, account: Account, login_client: Callable[..., Client], settings: Any
) -> None:
    settings.DEMO_MODE = demo
    customer = login_client(account.owner, account)
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    pages = [
        Client().get(reverse("accounts:login")),
        customer.get(reverse("core:dashboard")),
        staff.get(reverse("admin:index")),
    ]
    for response in pages:
        assert response.status_code == 200
        assert ("Demo mode:" in response.content.decode()) is demo
