"""Each person's time zone: set from the browser at the first login, changed in Profile,
and every time shown in it with the zone named; a date-only expiry is the end of that
day in the owner's zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.tests.factories import TEST_PASSWORD, UserFactory
from clientarea.accounts.tests.helpers import confirm_recently
from clientarea.core import timefmt

pytestmark = pytest.mark.django_db


def test_a_date_only_expiry_ends_that_day_in_the_owners_zone_and_reads_as_that_day(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    User.objects.filter(pk=account.owner_id).update(time_zone="Europe/Berlin")
    account.owner.refresh_from_db()
    member = member_factory("invoices")
    client = confirm_recently(login_client(account.owner, account))
    url = reverse("accounts:user_edit", args=[member.pk])
    response = client.post(
        url, {"access": "choose", "permissions": ["invoices"], "access_expires_on": "2027-01-31"}
    )
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.expires_at == datetime(2027, 2, 1, tzinfo=ZoneInfo("Europe/Berlin"))
    page = client.get(reverse("accounts:users")).content.decode()
    assert "31 Jan 2027, end of day (CET)" in page
    assert "1 Feb 2027" not in page
    edit = client.get(url).content.decode()
    assert 'value="2027-01-31"' in edit


def test_every_time_shows_in_the_persons_zone_with_the_zone_named(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    User.objects.filter(pk=account.owner_id).update(time_zone="Asia/Tokyo")
    account.owner.refresh_from_db()
    member_factory("invoices", expires_at=datetime(2027, 1, 31, 12, 0, tzinfo=UTC))
    page = login_client(account.owner, account).get(reverse("accounts:users")).content.decode()
    assert "31 Jan 2027, 21:00 JST" in page


def test_the_profile_sets_a_known_time_zone_only(login_client: Callable[..., Client]) -> None:
    user = UserFactory(first_name="Ann")
    client = login_client(user)
    url = reverse("accounts:profile")
    assert 'value="Europe/Dublin"' in client.get(url).content.decode()
    data = {"first_name": "Ann", "last_name": "", "time_zone": "Europe/Dublin"}
    assert client.post(url, data).status_code == 302
    user.refresh_from_db()
    assert user.time_zone == "Europe/Dublin"
    refused = client.post(url, {**data, "time_zone": "Mars/Olympus_Mons"})
    assert refused.status_code == 200
    user.refresh_from_db()
    assert user.time_zone == "Europe/Dublin"


def test_the_browsers_zone_is_taken_at_the_first_login_only(client: Client) -> None:
    user = UserFactory(email="tz@example.com")
    page = client.get(reverse("accounts:login")).content.decode()
    assert 'name="browser_time_zone"' in page and "accounts/time_zone.js" in page
    assert "<script>" not in page  # no inline script (strict CSP)
    login = {"username": "tz@example.com", "password": TEST_PASSWORD}
    client.post(reverse("accounts:login"), {**login, "browser_time_zone": "Europe/Paris"})
    user.refresh_from_db()
    assert user.time_zone == "Europe/Paris"
    client.post(reverse("accounts:logout"))
    client.post(reverse("accounts:login"), {**login, "browser_time_zone": "America/Chicago"})
    user.refresh_from_db()
    assert user.time_zone == "Europe/Paris"  # afterwards only Profile changes it


def test_an_unknown_browser_zone_is_ignored(client: Client) -> None:
    user = UserFactory(email="tz2@example.com")
    login = {"username": "tz2@example.com", "password": TEST_PASSWORD}
    client.post(reverse("accounts:login"), {**login, "browser_time_zone": "<b>Nowhere</b>"})
    user.refresh_from_db()
    assert user.time_zone == "UTC"


def test_an_expiry_at_midnight_reads_as_the_day_before_in_the_active_zone() -> None:
    assert timefmt.expiry(datetime(2027, 2, 1, tzinfo=UTC)) == "31 Jan 2027, end of day (UTC)"
    assert timefmt.when(datetime(2027, 2, 1, 9, 5, tzinfo=UTC)) == "1 Feb 2027, 09:05 UTC"
