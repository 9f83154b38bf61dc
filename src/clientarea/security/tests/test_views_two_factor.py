"""Two-factor set-up, recovery codes and the owner's "require two-factor" (ASVS 6.3.3)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.tests.factories import UserFactory
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail
from clientarea.security.models import AccountSecurity, RecoveryCode
from clientarea.security.twofactor import users_with_two_factor

from .factories import totp_now, two_factor_on

pytestmark = pytest.mark.django_db
SETUP = "/security/two-factor/setup/"


def test_setup_shows_a_qr_code_and_turns_on_with_a_valid_code(
    login_client: Callable[..., Client],
) -> None:
    """ASVS 6.3.3: TOTP set-up with a QR code; recovery codes shown once."""
    user: User = UserFactory()
    client = login_client(user)
    page = client.get(SETUP)
    html = page.content.decode()
    assert 'src="data:image/svg+xml' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert "no-store" in page["Cache-Control"]
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    wrong = client.post(SETUP, {"token": "000000" if totp_now(device) != "000000" else "111111"})
    assert wrong.status_code == 400
    assert not TOTPDevice.objects.filter(confirmed=True).exists()
    done = client.post(SETUP, {"token": totp_now(device)})
    assert done.status_code == 200 and "no-store" in done["Cache-Control"]
    assert TOTPDevice.objects.get(user=user).confirmed
    assert done.content.decode().count("<li><code>") == 10
    assert RecoveryCode.objects.filter(user=user).count() == 10
    assert AuditEvent.objects.filter(action="two_factor.enabled", actor=user).exists()
    assert OutboxEmail.objects.filter(to_email=user.email, subject__contains="is on").exists()


def test_recovery_codes_are_stored_only_as_hashes(login_client: Callable[..., Client]) -> None:
    """ASVS 6.5.2: lookup secrets are not stored in clear."""
    user: User = UserFactory()
    _, codes = two_factor_on(user)
    stored = set(RecoveryCode.objects.values_list("digest", flat=True))
    assert not any(code.replace("-", "") in d for code in codes for d in stored)


def test_turning_two_factor_off_is_audited_emailed_and_ends_other_sessions(
    login_client: Callable[..., Client],
) -> None:
    """ASVS 7.4.3 / 6.3.7: a 2FA change ends other sessions and the user is told."""
    user: User = UserFactory()
    two_factor_on(user)
    other = login_client(user)
    client = login_client(user)
    assert client.post(reverse("security:two_factor_disable")).status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not RecoveryCode.objects.filter(user=user).exists()
    assert other.get("/profile/").status_code == 302
    assert client.get("/profile/").status_code == 200
    assert AuditEvent.objects.filter(action="two_factor.disabled").exists()
    assert OutboxEmail.objects.filter(subject__contains="turned off").exists()


def test_a_user_without_two_factor_cannot_use_an_account_that_requires_it(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    """ASVS 6.3.3: the owner requires 2FA; a user without it is sent to set it up."""
    AccountSecurity.objects.create(account=account, require_two_factor=True)
    member = member_factory("tickets")
    client = login_client(member.user, account)
    response = client.get(reverse("core:dashboard"))
    assert response.status_code == 302 and response["Location"] == SETUP
    # selecting the account leads to the same place
    client.post(reverse("accounts:select_account"), {"account": account.pk})
    assert client.get(reverse("core:dashboard"))["Location"] == SETUP
    # with two-factor on, the account opens
    two_factor_on(member.user)
    assert client.get(reverse("core:dashboard")).status_code == 200


def test_the_owner_must_have_two_factor_before_requiring_it(
    login_client: Callable[..., Client], account: Account
) -> None:
    client = login_client(account.owner, account)
    client.post(reverse("security:require_two_factor"), {"required": "on"})
    assert not AccountSecurity.objects.filter(require_two_factor=True).exists()
    two_factor_on(account.owner)
    client.post(reverse("security:require_two_factor"), {"required": "on"})
    assert AccountSecurity.objects.get(account=account).require_two_factor
    assert AuditEvent.objects.filter(action="account.two_factor_required").exists()
    client.post(reverse("security:require_two_factor"), {})
    assert not AccountSecurity.objects.get(account=account).require_two_factor


def test_only_the_owner_can_require_two_factor(
    login_client: Callable[..., Client],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    """Authorization: even with All Permissions a sub-account gets 403 and changes nothing."""
    from clientarea.accounts.permissions import ALL_CODES

    member = member_factory(*sorted(ALL_CODES))
    two_factor_on(member.user)
    client = login_client(member.user, account)
    response = client.post(reverse("security:require_two_factor"), {"required": "on"})
    assert response.status_code == 403
    assert not AccountSecurity.objects.exists()
    assert AuditEvent.objects.filter(action="access.refused", actor=member.user).exists()


def test_user_management_can_show_who_has_two_factor() -> None:
    """The User Management list reads this in one query."""
    with_2fa, without = UserFactory(), UserFactory()
    two_factor_on(with_2fa)
    assert users_with_two_factor([with_2fa.pk, without.pk]) == {with_2fa.pk}
