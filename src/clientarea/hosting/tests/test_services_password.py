"""Reveal and change: audited, the owner told when a sub-account does it, never leaked."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import ContactFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.hosting import services
from clientarea.hosting.drivers import LocalPanelDriver, panel_driver
from clientarea.hosting.models import Service
from clientarea.notifications.models import OutboxEmail

from .conftest import KEY_B
from .factories import SERVICE_PASSWORD, ServiceFactory

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "Granite-Kettle-Orbit-Lantern-71"


def test_owner_reveal_is_audited_and_sends_no_email(account: Account) -> None:
    service = ServiceFactory(account=account)
    assert services.service_password_reveal(
        service=service, access=access_of(account.owner, account)
    ) == (SERVICE_PASSWORD)
    event = AuditEvent.objects.get(action="service.password_revealed")
    assert (event.actor, event.account, event.target_id) == (
        account.owner,
        account,
        str(service.pk),
    )
    assert SERVICE_PASSWORD not in str(event.changes) + event.target_label
    assert not OutboxEmail.objects.exists()


def test_sub_account_reveal_emails_the_owner_without_the_password(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("manageproducts")
    # A contact receiving product emails is not told: this is the owner's security notice.
    ContactFactory(account=account, email_kinds=["product", "general"])
    service = ServiceFactory(account=account, product_name="VPS 4 GB")
    services.service_password_reveal(service=service, access=access_of(member.user, member.account))
    email = OutboxEmail.objects.get()
    assert email.to_email == account.owner.email
    assert email.kind == "security"
    assert "VPS 4 GB" in email.subject and "revealed" in email.subject
    assert member.user.email in email.body_text
    assert SERVICE_PASSWORD not in email.subject + email.body_text
    assert service.password_ciphertext not in email.body_text
    assert AuditEvent.objects.get(action="service.password_revealed").actor == member.user


def test_the_owner_notice_shows_names_as_typed_not_html_escaped(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    from clientarea.accounts.tests.factories import UserFactory

    member = member_factory("manageproducts", user=UserFactory(first_name="<img src=x>"))
    service = ServiceFactory(account=account, product_name="Web & Mail <Pro>")
    services.service_password_reveal(service=service, access=access_of(member.user, member.account))
    email = OutboxEmail.objects.get()
    assert "Web & Mail <Pro>" in email.subject
    assert "<img src=x>" in email.body_text and "Web & Mail <Pro>" in email.body_text
    assert "&lt;" not in email.subject + email.body_text


def test_reveal_without_a_stored_password_is_refused(account: Account) -> None:
    service = ServiceFactory(account=account, password="")
    with pytest.raises(services.ServiceActionError):
        services.service_password_reveal(service=service, access=access_of(account.owner, account))
    assert not AuditEvent.objects.filter(action="service.password_revealed").exists()


def test_reveal_with_an_unreadable_secret_is_a_clear_error(account: Account, settings: Any) -> None:
    service = ServiceFactory(account=account)
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(services.ServiceActionError, match="cannot be read"):
        services.service_password_reveal(service=service, access=access_of(account.owner, account))


def test_change_hands_the_password_to_the_panel_and_stores_it_encrypted(
    account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    member = member_factory("manageproducts")
    service = ServiceFactory(account=account)
    services.service_password_change(
        service=service, access=access_of(member.user, member.account), new_password=NEW_PASSWORD
    )
    assert panel.calls == [(service.pk, NEW_PASSWORD)]
    fresh = Service.objects.get(pk=service.pk)
    assert fresh.decrypt_password() == NEW_PASSWORD
    assert NEW_PASSWORD not in fresh.password_ciphertext
    assert fresh.password_changed_at is not None
    event = AuditEvent.objects.get(action="service.password_changed")
    assert event.actor == member.user and NEW_PASSWORD not in str(event.changes)
    email = OutboxEmail.objects.get(to_email=account.owner.email)
    assert "changed" in email.subject and NEW_PASSWORD not in email.body_text


def test_owner_change_sends_no_email(account: Account, panel: Any) -> None:
    service = ServiceFactory(account=account)
    services.service_password_change(
        service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
    )
    assert not OutboxEmail.objects.exists()


@pytest.mark.parametrize(
    "weak",
    [
        "short-pw",
        "",
        " leading-space-password-1",
        "trailing-space-password-1 ",
        "tab\tinside-long-password",
    ],
)
def test_weak_passwords_change_nothing(account: Account, panel: Any, weak: str) -> None:
    service = ServiceFactory(account=account)
    with pytest.raises(ValidationError):
        services.service_password_change(
            service=service, access=access_of(account.owner, account), new_password=weak
        )
    assert panel.calls == []
    assert Service.objects.get(pk=service.pk).decrypt_password() == SERVICE_PASSWORD
    assert not AuditEvent.objects.filter(action="service.password_changed").exists()


def test_a_password_like_the_username_is_refused(account: Account, panel: Any) -> None:
    service = ServiceFactory(account=account, username="acmewebstudio2024")
    with pytest.raises(ValidationError):
        services.service_password_change(
            service=service,
            access=access_of(account.owner, account),
            new_password="acmewebstudio2024!",
        )


@pytest.mark.parametrize(
    "like_username",
    [
        "acmeweb-acmeweb-acmeweb",
        "ACMEWEB-Granite-Kettle-71",
        "Granite-Kettle-AcmeWeb-71",
        "acme-web-studio.ie-2024!!",
    ],
)
def test_a_password_containing_or_made_of_the_username_is_refused(
    account: Account, panel: Any, like_username: str
) -> None:
    """The help text says "not like the username or domain": that is what is enforced."""
    service = ServiceFactory(account=account, username="acmeweb", domain="acme-web-studio.ie")
    with pytest.raises(ValidationError) as refused:
        services.service_password_change(
            service=service, access=access_of(account.owner, account), new_password=like_username
        )
    assert "username" in str(refused.value)
    assert panel.calls == []
    # An unrelated phrase of the same length is fine.
    services.service_password_change(
        service=service,
        access=access_of(account.owner, account),
        new_password="Granite-Kettle-Orbit-71",
    )


def test_a_panel_refusal_rolls_everything_back(
    account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    panel.refuse = "The panel is in maintenance."
    member = member_factory("manageproducts")
    service = ServiceFactory(account=account)
    # The panel's own words become the form's error, as they are.
    with pytest.raises(ValidationError, match=r"The panel is in maintenance\."):
        services.service_password_change(
            service=service,
            access=access_of(member.user, member.account),
            new_password=NEW_PASSWORD,
        )
    assert Service.objects.get(pk=service.pk).decrypt_password() == SERVICE_PASSWORD
    assert not AuditEvent.objects.filter(action="service.password_changed").exists()
    assert not OutboxEmail.objects.exists()


@pytest.mark.parametrize("status", [Service.Status.TERMINATED, Service.Status.CANCELLED,
                                    Service.Status.PENDING])  # fmt: skip
def test_a_service_without_a_panel_account_cannot_change_password(
    account: Account, panel: Any, status: str
) -> None:
    service = ServiceFactory(account=account, status=status)
    with pytest.raises(services.ServiceActionError):
        services.service_password_change(
            service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
        )
    assert panel.calls == []


def test_the_local_driver_records_the_change_without_the_password(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    driver = panel_driver()
    assert isinstance(driver, LocalPanelDriver)
    service = ServiceFactory(account=account)
    with caplog.at_level(logging.DEBUG):
        services.service_password_change(
            service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
        )
        services.service_password_reveal(service=service, access=access_of(account.owner, account))
    assert driver.changes[-1].service_id == service.pk
    assert NEW_PASSWORD not in repr(driver.changes)
    assert NEW_PASSWORD not in caplog.text
    assert "changed" in caplog.text  # the driver did log, just not the secret
