"""The profile, contacts, users and invitations services check the policy themselves,
from the attacker's side: whatever entry point calls them (page, API, command), an
access of another account, one that has ended since it was built, or one without the
permission (or, for users and invitations, without the owner's power) is refused before
anything is stored, audited or emailed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from clientarea.accounts import services
from clientarea.accounts.models import Account, Contact, Invitation, Membership
from clientarea.accounts.policy import Access, NotPermitted, OutOfReach
from clientarea.accounts.tests.factories import ContactFactory, InvitationFactory, access_of
from clientarea.audit.models import AuditEvent
from clientarea.notifications.models import OutboxEmail

pytestmark = pytest.mark.django_db

PROFILE = {"company_name": "Forged Ltd", "city": "Elsewhere"}
CONTACT = {"name": "Eve", "email": "eve@example.org", "phone": "", "email_kinds": ["general"]}


def _snapshot() -> dict[str, Any]:
    return {
        "accounts": list(Account.objects.order_by("pk").values()),
        "contacts": list(Contact.objects.order_by("pk").values()),
        "memberships": list(Membership.objects.order_by("pk").values()),
        "invitations": list(Invitation.objects.order_by("pk").values()),
        "audit": AuditEvent.objects.count(),
        "emails": OutboxEmail.objects.count(),
    }


@pytest.fixture
def world(account: Account, member_factory: Callable[..., Membership]) -> dict[str, Any]:
    invitee = InvitationFactory(account=account)
    return {
        "contact": ContactFactory(account=account, confirmed_at=None),
        "member": member_factory("invoices"),
        "invitation": invitee,
    }


ContactAction = Callable[[dict[str, Any], Account, Access], object]

CONTACT_ACTIONS: dict[str, ContactAction] = {
    "profile": lambda w, a, x: services.account_update_profile(account=a, access=x, data=PROFILE),
    "contact_create": lambda w, a, x: services.contact_create(account=a, access=x, data=CONTACT),
    "contact_update": lambda w, a, x: services.contact_update(
        contact=w["contact"], access=x, data=CONTACT
    ),
    "contact_delete": lambda w, a, x: services.contact_delete(contact=w["contact"], access=x),
    "contact_resend": lambda w, a, x: services.contact_confirmation_resend(
        contact=w["contact"], access=x
    ),
}
OWNER_ACTIONS: dict[str, ContactAction] = {
    "membership_update": lambda w, a, x: services.membership_update(
        membership=w["member"], access=x, permission_codes=["invoices", "tickets"], expires_at=None
    ),
    "membership_revoke": lambda w, a, x: services.membership_revoke(
        membership=w["member"], access=x
    ),
    "invitation_create": lambda w, a, x: services.invitation_create(
        account=a, access=x, email="accomplice@example.org", permission_codes=["invoices"]
    ),
    "invitation_resend": lambda w, a, x: services.invitation_resend(
        invitation=w["invitation"], access=x
    ),
    "invitation_cancel": lambda w, a, x: services.invitation_cancel(
        invitation=w["invitation"], access=x
    ),
}
PERMISSION_OF = {"profile": "profile"}
ALL_ACTIONS = {**CONTACT_ACTIONS, **OWNER_ACTIONS}


@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_another_accounts_owner_is_not_found(
    action: str, world: dict[str, Any], account: Account, other_account: Account
) -> None:
    before = _snapshot()
    with pytest.raises(OutOfReach):
        ALL_ACTIONS[action](world, account, access_of(other_account.owner, other_account))
    assert _snapshot() == before


@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_an_access_ended_since_it_was_built_is_not_found(
    action: str,
    world: dict[str, Any],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    partner = member_factory("profile", "contacts", "invoices")
    built = access_of(partner.user, account)
    services.membership_revoke(membership=partner, actor=account.owner)
    before = _snapshot()
    with pytest.raises(OutOfReach):
        ALL_ACTIONS[action](world, account, built)
    assert _snapshot() == before


@pytest.mark.parametrize("action", CONTACT_ACTIONS)
def test_an_access_without_the_permission_is_refused_with_a_403(
    action: str,
    world: dict[str, Any],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    # The page's permission is the one the action does not hold: `contacts` for the
    # profile is no help, `profile` for the contacts neither.
    held = "contacts" if action == "profile" else "profile"
    viewer = member_factory(held, "invoices", "tickets")
    before = _snapshot()
    with pytest.raises(NotPermitted) as caught:
        CONTACT_ACTIONS[action](world, account, access_of(viewer.user, account))
    assert caught.value.permission == PERMISSION_OF.get(action, "contacts")
    assert isinstance(caught.value, services.AccessError)  # the pages show its sentence
    assert _snapshot() == before


@pytest.mark.parametrize("action", CONTACT_ACTIONS)
def test_permission_removed_after_the_access_was_built_is_refused(
    action: str,
    world: dict[str, Any],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    partner = member_factory("profile", "contacts", "invoices")
    built = access_of(partner.user, account)
    Membership.objects.filter(pk=partner.pk).update(permissions=["invoices"])
    before = _snapshot()
    with pytest.raises(NotPermitted):
        CONTACT_ACTIONS[action](world, account, built)
    assert _snapshot() == before


@pytest.mark.parametrize("action", OWNER_ACTIONS)
def test_a_sub_account_with_every_permission_cannot_manage_users(
    action: str,
    world: dict[str, Any],
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    partner = member_factory("profile", "contacts", "invoices", "tickets", "emails", "products")
    before = _snapshot()
    with pytest.raises(NotPermitted, match="Only the account owner"):
        OWNER_ACTIONS[action](world, account, access_of(partner.user, account))
    assert _snapshot() == before


def test_an_access_built_before_ownership_moved_is_not_found(
    world: dict[str, Any], account: Account, member_factory: Callable[..., Membership]
) -> None:
    built = access_of(account.owner, account)
    newcomer = member_factory("invoices").user
    Account.objects.filter(pk=account.pk).update(owner=newcomer)
    before = _snapshot()
    for action in ALL_ACTIONS.values():
        with pytest.raises(OutOfReach):
            action(world, account, built)
    assert _snapshot() == before


def test_the_page_access_still_works_and_is_audited_as_its_person(
    world: dict[str, Any], account: Account, member_factory: Callable[..., Membership]
) -> None:
    editor = member_factory("profile", "contacts")
    access = access_of(editor.user, account)
    services.account_update_profile(account=account, access=access, data=PROFILE)
    contact = services.contact_create(account=account, access=access, data=CONTACT)
    account.refresh_from_db()
    assert account.company_name == "Forged Ltd"
    events = AuditEvent.objects.filter(action__in=["account.profile_changed", "contact.added"])
    assert {e.actor_id for e in events} == {editor.user.pk}
    # The sub-account chose the kind: it answers for it.
    assert contact.kind_sponsors == {"general": editor.user.pk}
    assert OutboxEmail.objects.filter(to_email=CONTACT["email"]).count() == 1
