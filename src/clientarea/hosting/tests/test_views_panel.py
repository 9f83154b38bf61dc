"""Log in to cPanel, usage and pending changes on the service page, from the attacker's
side: other accounts' ids, missing permission, stale sessions, nothing cached."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse

from clientarea.accounts.models import Account, Membership
from clientarea.audit.models import AuditEvent

from .factories import ServiceFactory
from .test_views import stale

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "Meridian-Falcon-Sextant-Quay-5"


@pytest.fixture(autouse=True)
def _no_cached_summaries() -> None:
    cache.clear()


def test_log_in_to_cpanel_sends_the_browser_to_the_one_time_url_uncached(
    account: Account, member_factory: Callable[..., Membership], fresh_client: Any, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    client = fresh_client(member_factory("manageproducts").user, account)
    page = client.get(reverse("hosting:detail", args=[service.pk]))
    assert "Log in to cPanel" in page.content.decode()
    response = client.post(reverse("hosting:panel_login", args=[service.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith("https://panel.test:2083/cpsess")
    assert "no-store" in response["Cache-Control"]
    assert AuditEvent.objects.filter(action="service.panel_login").count() == 1
    # A GET (a link, a prefetch) never creates a session.
    assert client.get(reverse("hosting:panel_login", args=[service.pk])).status_code == 302
    assert panel.sessions == 1


def test_log_in_to_cpanel_is_refused_without_the_permission_or_for_another_account(
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
    fresh_client: Any,
    panel: Any,
) -> None:
    service = ServiceFactory(account=account)
    foreign = ServiceFactory(account=other_account)
    viewer = fresh_client(member_factory("products").user, account)
    assert (
        "Log in to cPanel"
        not in viewer.get(reverse("hosting:detail", args=[service.pk])).content.decode()
    )
    assert viewer.post(reverse("hosting:panel_login", args=[service.pk])).status_code == 403
    owner = fresh_client(account.owner, account)
    assert owner.post(reverse("hosting:panel_login", args=[foreign.pk])).status_code == 404
    assert panel.sessions == 0 and not AuditEvent.objects.filter(action="service.panel_login")


def test_log_in_to_cpanel_asks_a_stale_session_to_confirm_the_password_first(
    account: Account, fresh_client: Any, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    client = stale(fresh_client(account.owner, account))
    response = client.post(reverse("hosting:panel_login", args=[service.pk]))
    assert response.status_code == 302
    assert "panel.test" not in response["Location"] and panel.sessions == 0


def test_the_service_page_shows_the_panels_usage_or_says_it_did_not_answer(
    account: Account, fresh_client: Any, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    client = fresh_client(account.owner, account)
    page = client.get(reverse("hosting:detail", args=[service.pk])).content.decode()
    assert "512 MB used of 2.0 GB" in page
    cache.clear()
    panel.unavailable = True
    page = client.get(reverse("hosting:detail", args=[service.pk])).content.decode()
    assert "did not answer, so usage cannot be shown" in page


def test_a_pending_password_change_is_shown_as_pending_never_as_changed(
    account: Account, fresh_client: Any, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    client = fresh_client(account.owner, account)
    panel.uncertain = 99
    response = client.post(
        reverse("hosting:password_change", args=[service.pk]),
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        follow=True,
    )
    page = response.content.decode()
    assert "was changed" not in page
    assert "has not confirmed the new password" in page
    assert "is <strong>pending</strong>" in page
    assert "Change Password</a>" not in page  # no second change while one is pending


def test_the_panels_refusal_shows_on_the_form_word_for_word(
    account: Account, fresh_client: Any, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    client = fresh_client(account.owner, account)
    panel.refuse = "Sorry, the password you selected cannot be used because it is too weak."
    response = client.post(
        reverse("hosting:password_change", args=[service.pk]),
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert "Sorry, the password you selected cannot be used because it is too weak." in (
        response.content.decode()
    )


def test_a_change_abandoned_unanswered_is_not_called_not_made(
    account: Account, fresh_client: Any, panel: Any
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from clientarea.core.models import PendingChange
    from clientarea.core.outside import pending_changes_reconcile_due

    service = ServiceFactory(account=account)
    client = fresh_client(account.owner, account)
    panel.uncertain = 999
    client.post(
        reverse("hosting:password_change", args=[service.pk]),
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    PendingChange.objects.update(
        created_at=timezone.now() - timedelta(hours=25),
        next_check_at=timezone.now() - timedelta(seconds=1),
    )
    assert pending_changes_reconcile_due()["failed"] == 1
    page = client.get(reverse("hosting:detail", args=[service.pk])).content.decode()
    assert "could <strong>not be confirmed</strong>" in page and "not made" not in page
    # A refusal, though, was not made.
    panel.uncertain = 0
    panel.refuse = "The panel refused it."
    client.post(
        reverse("hosting:password_change", args=[service.pk]),
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    page = client.get(reverse("hosting:detail", args=[service.pk])).content.decode()
    assert "was <strong>not made</strong>: The panel refused it." in page
