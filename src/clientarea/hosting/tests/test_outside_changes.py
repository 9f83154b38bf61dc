"""Panel changes follow "record the intent, call outside, record the result": the panel is
never called inside a transaction, an unanswered call stays pending (the customer is never
told it happened), and the worker settles what a crash or a timeout left behind."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.policy import NotPermitted
from clientarea.accounts.tests.factories import UserFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.core.models import PendingChange
from clientarea.core.outside import pending_changes_reconcile_due
from clientarea.hosting import services
from clientarea.hosting.models import Service
from clientarea.notifications.models import OutboxEmail

from .factories import SERVICE_PASSWORD, ServiceFactory

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "Granite-Kettle-Orbit-Lantern-71"


@pytest.fixture
def staff_user() -> Any:
    return UserFactory(is_staff=True, is_superuser=True)


def _due_now() -> None:
    """Move every pending change past its grace period, as if minutes had passed."""
    PendingChange.objects.update(next_check_at=timezone.now() - timedelta(seconds=1))


def _stored(service: Service) -> str:
    return Service.objects.get(pk=service.pk).decrypt_password()


def test_a_made_change_is_recorded_once_with_its_intent_finished(
    account: Account, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    outcome = services.service_password_change(
        service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
    )
    assert not outcome.pending
    change = PendingChange.objects.get()
    assert (change.state, change.operation, change.secret_ciphertext) == (
        "done",
        "hosting.password",
        "",  # the encrypted password leaves with the pending change
    )
    assert _stored(service) == NEW_PASSWORD
    assert panel.calls == [(service.pk, NEW_PASSWORD)]
    assert AuditEvent.objects.filter(action="service.password_changed").count() == 1


def test_an_unanswered_change_stays_pending_and_nothing_claims_it_was_made(
    account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    member = member_factory("manageproducts")
    service = ServiceFactory(account=account)
    panel.uncertain = 99  # the panel takes the password but never answers
    outcome = services.service_password_change(
        service=service, access=access_of(member.user, member.account), new_password=NEW_PASSWORD
    )
    assert outcome.pending
    change = PendingChange.objects.get()
    assert change.state == "pending" and change.secret_ciphertext
    assert NEW_PASSWORD not in change.secret_ciphertext + str(change.params)
    assert _stored(service) == SERVICE_PASSWORD  # not "changed" until the panel says so
    assert not AuditEvent.objects.filter(action="service.password_changed").exists()
    assert not OutboxEmail.objects.exists()
    assert services.service_pending_change(service) == change


def test_a_newer_password_replaces_one_still_pending_and_the_older_never_lands(
    account: Account, panel: Any, staff_user: Any
) -> None:
    service = ServiceFactory(account=account)
    panel.uncertain = 99
    services.service_password_change(
        service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
    )
    first = PendingChange.objects.get()
    panel.uncertain = 0
    newer = "Another-Long-Phrase-93"
    outcome = services.service_password_change(
        service=service, access=access_of(account.owner, account), new_password=newer
    )
    assert not outcome.pending
    first.refresh_from_db()
    assert (first.state, first.message) == ("failed", services.REPLACED_MESSAGE)
    assert _stored(service) == newer
    # The older request's answer arriving late changes nothing.
    services._password_change_record(first, NEW_PASSWORD)
    assert _stored(service) == newer


def test_a_pending_suspension_holds_a_password_change(
    account: Account, panel: Any, staff_user: Any
) -> None:
    service = ServiceFactory(account=account)
    panel.uncertain = 99
    services.service_suspend(service=service, staff=staff_user, reason="Unpaid")
    panel.uncertain = 0
    with pytest.raises(services.ServiceActionError, match="still waiting"):
        services.service_password_change(
            service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
        )
    # The customer's page says nothing of the staff's suspension attempt.
    assert services.service_pending_change(service) is None


def test_the_worker_settles_a_pending_change_by_setting_the_password_again(
    account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    member = member_factory("manageproducts")
    service = ServiceFactory(account=account)
    panel.uncertain = 99
    services.service_password_change(
        service=service, access=access_of(member.user, member.account), new_password=NEW_PASSWORD
    )
    # Not yet: the request that made it may still be talking to the panel.
    assert pending_changes_reconcile_due() == {"done": 0, "failed": 0, "pending": 0}
    _due_now()
    panel.uncertain = 0
    assert pending_changes_reconcile_due()["done"] == 1
    assert _stored(service) == NEW_PASSWORD
    assert panel.calls[-1] == (service.pk, NEW_PASSWORD)
    event = AuditEvent.objects.get(action="service.password_changed")
    assert event.actor == member.user
    # The owner is told once, as when the panel answers at once; never the password.
    email = OutboxEmail.objects.get()
    assert email.to_email == account.owner.email and NEW_PASSWORD not in email.body_text
    # Settled once: running the worker again changes nothing.
    _due_now()
    assert pending_changes_reconcile_due() == {"done": 0, "failed": 0, "pending": 0}
    assert AuditEvent.objects.filter(action="service.password_changed").count() == 1


def test_a_crash_after_the_panel_call_is_settled_by_the_worker(
    account: Account, panel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ServiceFactory(account=account)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("the process died after the panel changed the password")

    monkeypatch.setattr(services, "_password_change_record", crash)
    with pytest.raises(SystemExit):
        services.service_password_change(
            service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
        )
    monkeypatch.undo()
    assert panel.calls == [(service.pk, NEW_PASSWORD)]
    assert PendingChange.objects.get().state == "pending"
    assert _stored(service) == SERVICE_PASSWORD
    _due_now()
    assert pending_changes_reconcile_due()["done"] == 1
    assert _stored(service) == NEW_PASSWORD


def test_a_panel_still_silent_keeps_the_change_pending_then_gives_up(
    account: Account, panel: Any, settings: Any
) -> None:
    service = ServiceFactory(account=account)
    panel.uncertain = 999
    services.service_password_change(
        service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
    )
    _due_now()
    assert pending_changes_reconcile_due()["pending"] == 1
    change = PendingChange.objects.get()
    assert change.state == "pending" and change.next_check_at > timezone.now()
    PendingChange.objects.update(created_at=timezone.now() - timedelta(hours=25))
    _due_now()
    assert pending_changes_reconcile_due()["failed"] == 1
    change.refresh_from_db()
    assert change.state == "failed" and "never answered" in change.message
    assert change.secret_ciphertext == ""
    assert _stored(service) == SERVICE_PASSWORD
    assert services.service_last_failed_change(service) == change


def test_a_panel_out_of_reach_changes_nothing_and_says_so(account: Account, panel: Any) -> None:
    service = ServiceFactory(account=account)
    panel.unavailable = True
    with pytest.raises(services.ServiceActionError, match="did not answer; nothing was changed"):
        services.service_password_change(
            service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
        )
    assert PendingChange.objects.get().state == "failed"
    assert _stored(service) == SERVICE_PASSWORD
    assert not AuditEvent.objects.filter(action="service.password_changed").exists()


def test_the_panels_own_refusal_is_the_form_error_word_for_word(
    account: Account, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    panel.refuse = "The password you selected cannot be used because it is too weak."
    with pytest.raises(ValidationError) as caught:
        services.service_password_change(
            service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
        )
    assert caught.value.messages == [panel.refuse]
    assert PendingChange.objects.get().message == panel.refuse


def test_a_revoked_person_cannot_start_a_change(
    account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    member = member_factory("manageproducts")
    service = ServiceFactory(account=account)
    access = access_of(member.user, account)  # built while they still had access
    member.delete()
    with pytest.raises(services.OutOfReach):
        services.service_password_change(
            service=service,
            access=access,
            new_password=NEW_PASSWORD,
        )
    assert not PendingChange.objects.exists() and panel.calls == []


# --- single sign-on, usage, suspension -------------------------------------------------


def test_panel_login_needs_manage_products_is_audited_and_alerts_the_owner(
    account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    service = ServiceFactory(account=account)
    viewer = member_factory("products")
    with pytest.raises(NotPermitted, match="View & Modify Product Password"):
        services.service_panel_login(service=service, access=access_of(viewer.user, viewer.account))
    assert panel.sessions == 0
    manager = member_factory("manageproducts")
    url = services.service_panel_login(
        service=service, access=access_of(manager.user, manager.account)
    )
    assert url.startswith("https://panel.test:2083/cpsess")
    event = AuditEvent.objects.get(action="service.panel_login")
    assert event.actor == manager.user
    email = OutboxEmail.objects.get()
    assert email.to_email == account.owner.email and email.kind == "security"
    assert "logged in to the control panel" in email.subject
    # The one-time URL is stored nowhere: not in the audit event, not in the email.
    assert url not in str(event.changes) + event.target_label + email.body_text
    assert not PendingChange.objects.exists()


def test_panel_login_of_a_suspended_service_is_refused(account: Account, panel: Any) -> None:
    service = ServiceFactory(account=account, status=Service.Status.SUSPENDED)
    with pytest.raises(services.ServiceActionError, match="no control-panel login"):
        services.service_panel_login(service=service, access=access_of(account.owner, account))
    assert panel.sessions == 0


def test_usage_is_the_panels_and_is_reused_for_a_minute(account: Account, panel: Any) -> None:
    from django.core.cache import cache

    cache.clear()
    service = ServiceFactory(account=account)
    summary = services.service_panel_summary(service)
    assert summary is not None and summary.disk_used_mb == 512.0
    panel.unavailable = True  # cached: the panel is not asked again
    assert services.service_panel_summary(service) == summary
    cache.clear()
    assert services.service_panel_summary(service) is None  # no answer: nothing shown


def test_staff_suspend_goes_through_the_panel_then_records_it(
    account: Account, staff_user: Any, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    outcome = services.service_suspend(service=service, staff=staff_user, reason="Abuse report")
    assert not outcome.pending
    assert panel.suspended == {service.pk: "Abuse report"}
    assert Service.objects.get(pk=service.pk).status == "suspended"
    event = AuditEvent.objects.get(action="service.suspended")
    assert event.is_staff_action and event.changes["reason"] == "Abuse report"
    services.service_unsuspend(service=service, staff=staff_user)
    assert panel.suspended == {} and Service.objects.get(pk=service.pk).status == "active"


def test_an_unanswered_suspension_is_settled_from_the_account_summary(
    account: Account, staff_user: Any, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    panel.uncertain = 99
    assert services.service_suspend(service=service, staff=staff_user, reason="Unpaid").pending
    assert Service.objects.get(pk=service.pk).status == "active"
    panel.uncertain = 0
    _due_now()
    assert pending_changes_reconcile_due()["done"] == 1  # the panel shows it suspended
    assert Service.objects.get(pk=service.pk).status == "suspended"


def test_a_suspension_the_panel_never_made_is_recorded_as_not_made(
    account: Account, staff_user: Any, panel: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = ServiceFactory(account=account)

    # The request is lost before it reaches the panel, and no answer comes either.
    def lost(self: Any, service: Any, reason: str) -> None:
        raise services.OutsideUncertain("no answer")

    monkeypatch.setattr(panel, "suspend", lost)
    assert services.service_suspend(service=service, staff=staff_user, reason="Unpaid").pending
    monkeypatch.undo()
    panel.uncertain = 0
    _due_now()
    assert pending_changes_reconcile_due()["failed"] == 1
    assert Service.objects.get(pk=service.pk).status == "active"
    assert "did not make the change" in PendingChange.objects.get().message
