"""The password and panel-login services check the policy themselves, from the attacker's
side: whatever entry point calls them (page, API, admin action, command), an access
without the permission, with another item in scope, on another account's service, or
that has ended since it was built is refused before anything is read, sent or recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.policy import Access, NotPermitted, OutOfReach
from clientarea.accounts.services import membership_revoke
from clientarea.accounts.tests.factories import access_of
from clientarea.audit.models import AuditEvent
from clientarea.core.models import PendingChange
from clientarea.hosting import services
from clientarea.hosting.models import Service
from clientarea.notifications.models import OutboxEmail

from .factories import SERVICE_PASSWORD, ServiceFactory

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "Granite-Kettle-Orbit-Lantern-71"

Action = Callable[[Service, Access], object]

ACTIONS: dict[str, Action] = {
    "reveal": lambda s, a: services.service_password_reveal(service=s, access=a),
    "change": lambda s, a: services.service_password_change(
        service=s, access=a, new_password=NEW_PASSWORD
    ),
    "panel_login": lambda s, a: services.service_panel_login(service=s, access=a),
}


def _nothing_happened(service: Service, panel: Any, emails: int = 0) -> None:
    fresh = Service.objects.get(pk=service.pk)
    assert fresh.decrypt_password() == SERVICE_PASSWORD
    assert panel.calls == [] and panel.sessions == 0
    assert not PendingChange.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="service.").exists()
    assert OutboxEmail.objects.count() == emails  # no alert to the owner


@pytest.mark.parametrize("action", ACTIONS)
def test_a_sub_account_without_the_permission_is_refused_with_a_403(
    action: str, account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    service = ServiceFactory(account=account)
    viewer = member_factory("products", "domains", "invoices")
    with pytest.raises(NotPermitted, match=r"View & Modify Product Password \(manageproducts\)"):
        ACTIONS[action](service, access_of(viewer.user, account))
    _nothing_happened(service, panel)


@pytest.mark.parametrize("action", ACTIONS)
def test_the_permission_on_another_item_of_the_scope_is_not_found(
    action: str, account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    theirs = ServiceFactory(account=account, domain="theirs.example")
    target = ServiceFactory(account=account, domain="target.example")
    scoped = member_factory("manageproducts", scope={"service": [theirs.pk], "domain": []})
    with pytest.raises(OutOfReach, match="No such service"):
        ACTIONS[action](target, access_of(scoped.user, account))
    _nothing_happened(target, panel)


@pytest.mark.parametrize("action", ACTIONS)
def test_another_accounts_service_is_not_found_even_for_its_owner_elsewhere(
    action: str, account: Account, other_account: Account, panel: Any
) -> None:
    foreign = ServiceFactory(account=other_account)
    # The owner of `account`, with every permission there, aims at a service of another
    # account (an id guessed or replayed).
    with pytest.raises(OutOfReach, match="No such service"):
        ACTIONS[action](foreign, access_of(account.owner, account))
    _nothing_happened(foreign, panel)


@pytest.mark.parametrize("action", ACTIONS)
def test_an_access_revoked_after_it_was_built_is_not_found(
    action: str, account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    service = ServiceFactory(account=account)
    member = member_factory("manageproducts")
    access = access_of(member.user, account)  # the page built it; then Revoke Access
    membership_revoke(membership=member, actor=account.owner)
    emails = OutboxEmail.objects.count()  # the revocation's own notices
    with pytest.raises(OutOfReach, match="No such service"):
        ACTIONS[action](service, access)
    _nothing_happened(service, panel, emails)


@pytest.mark.parametrize("action", ACTIONS)
def test_a_permission_removed_after_the_access_was_built_is_refused(
    action: str, account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    service = ServiceFactory(account=account)
    member = member_factory("manageproducts")
    access = access_of(member.user, account)
    Membership.objects.filter(pk=member.pk).update(permissions=["products"])
    with pytest.raises(NotPermitted):
        ACTIONS[action](service, access)
    _nothing_happened(service, panel)


def test_an_access_never_grows_with_the_grant_it_was_built_from(
    account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    """An access built narrow (e.g. a token's) stays narrow when the person's own grant
    widens: the service asks the intersection, not the person."""
    service = ServiceFactory(account=account)
    member = member_factory("products")
    narrow = access_of(member.user, account)
    Membership.objects.filter(pk=member.pk).update(permissions=["manageproducts", "products"])
    with pytest.raises(NotPermitted):
        services.service_password_reveal(service=service, access=narrow)
    assert services.service_password_reveal(
        service=service, access=access_of(member.user, account)
    ) == (SERVICE_PASSWORD)


def test_the_owner_and_a_permitted_scoped_person_still_act(
    account: Account, member_factory: Callable[..., Membership], panel: Any
) -> None:
    service = ServiceFactory(account=account)
    scoped = member_factory("manageproducts", scope={"service": [service.pk], "domain": []})
    assert (
        services.service_password_reveal(service=service, access=access_of(scoped.user, account))
        == SERVICE_PASSWORD
    )
    outcome = services.service_password_change(
        service=service, access=access_of(account.owner, account), new_password=NEW_PASSWORD
    )
    assert not outcome.pending and panel.calls == [(service.pk, NEW_PASSWORD)]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"service.password_revealed", "service.password_changed"} <= actions
