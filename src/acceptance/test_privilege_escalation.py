"""Privilege escalation: every form that touches permissions, memberships, invitations,
the account or the session's account, posted with extra or forged fields.

Forged fields name the owner, another account, another user, a status, or permissions
the actor lacks (owner-only powers, unknown codes, garbage). Each test takes a snapshot of
everything access depends on (see ``acceptance.actors.snapshot``) and asserts the exact
difference afterwards: the form's legitimate effect and nothing else. Posts go through
clients with CSRF enforcement and a valid token, recently re-authenticated, so a 403 is
the policy's refusal and a 404 is another account's object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import reverse

from acceptance.actors import CSRF, browser, diff, owners_have_no_membership, post, snapshot
from acceptance.objects import OBJECT_KWARGS, STATIC_KWARGS
from clientarea.access_table import ROUTES, Route
from clientarea.accounts import permissions
from clientarea.accounts.middleware import SESSION_ACCOUNT_KEY
from clientarea.accounts.models import Account, Contact, Invitation, Membership, User
from clientarea.accounts.services import (
    AccessError,
    invitation_cancel,
    invitation_create,
    invitation_resend,
    membership_grant,
    membership_revoke,
    membership_update,
)
from clientarea.accounts.tests.factories import (
    AccountFactory,
    ContactFactory,
    MembershipFactory,
    UserFactory,
)
from clientarea.accounts.tests.helpers import invitation_token_from_outbox, open_invitation
from clientarea.audit.models import AuditEvent
from clientarea.security.models import AccountSecurity
from clientarea.security.tests.factories import two_factor_on

pytestmark = pytest.mark.django_db

ALL = sorted(permissions.ALL_CODES)
NEW_PASSWORD = "a brand new passphrase, 42"


@dataclass
class World:
    a: Account
    b: Account
    sub: Membership  # of A, holding every permission
    member: Membership  # of A, tickets only
    invitation: Invitation  # of A, pending, View & Pay Invoices
    token: str
    contact: Contact
    b_sub: Membership  # of B, holding every permission
    b_member: Membership
    b_invitation: Invitation
    b_contact: Contact

    @property
    def owner(self) -> User:
        return self.a.owner

    def actor(self, name: str) -> User:
        return {
            "owner": self.a.owner,
            "sub": self.sub.user,
            "b_owner": self.b.owner,
            "b_sub": self.b_sub.user,
        }[name]

    def home(self, name: str) -> Account:
        return self.b if name.startswith("b_") else self.a


@pytest.fixture
def world() -> World:
    a = AccountFactory(company_name="Account A")
    b = AccountFactory(company_name="Account B")
    invitation = invitation_create(
        account=a, actor=a.owner, email="invitee@example.com", permission_codes=["invoices"]
    )
    b_invitation = invitation_create(
        account=b, actor=b.owner, email="b-invitee@example.com", permission_codes=["tickets"]
    )
    return World(
        a=a,
        b=b,
        sub=MembershipFactory(account=a, permissions=ALL),
        member=MembershipFactory(account=a, permissions=["tickets"]),
        invitation=invitation,
        token=invitation_token_from_outbox("invitee@example.com"),
        contact=ContactFactory(account=a),
        b_sub=MembershipFactory(account=b, permissions=ALL),
        b_member=MembershipFactory(account=b, permissions=["tickets"]),
        b_invitation=b_invitation,
        b_contact=ContactFactory(account=b),
    )


def forged(w: World, *, with_permissions: bool = True) -> dict[str, Any]:
    """Fields no form of the client area has, each naming something the actor must not
    be able to reach or set."""
    fields: dict[str, Any] = {
        "is_owner": "on",
        "owner": w.sub.user.pk,
        "owner_id": w.sub.user.pk,
        "account": w.b.pk,
        "account_id": w.b.pk,
        "current_account_id": w.b.pk,
        "user": w.sub.user.pk,
        "user_id": w.b.owner.pk,
        "membership_id": w.b_member.pk,
        "invitation_id": w.b_invitation.pk,
        "status": "active",
        "is_staff": "on",
        "is_superuser": "on",
        "invited_by": w.sub.user.pk,
        "accepted_by": w.sub.user.pk,
        "credit_balance": "99999.00",
        "currency": "USD",
        "expires_at": "",
        "id": w.b.pk,
        "pk": w.b.pk,
    }
    if with_permissions:
        fields["access"] = "all"
        fields["permissions"] = [*ALL, "manage_users", "transfer_ownership", "superpower"]
    return fields


# Values of `permissions` that must never be stored: an owner-only power, unknown codes,
# the names of the radio choices, markup, empty strings.
GARBAGE_PERMISSIONS: list[Any] = [
    ["manage_users"],
    ["invoices", "transfer_ownership"],
    ["invoices", "superpower"],
    ["all"],
    ["owner"],
    ["<script>alert(1)</script>"],
    [""],
    "manage_payment_methods",
]


def url(name: str, *args: Any) -> str:
    return reverse(name, args=args or None)


def test_forged_fields_cover_the_task(world: World) -> None:
    for field in ("is_owner", "owner", "account", "account_id", "status", "user", "permissions"):
        assert field in forged(world)


# --- Invite a New User ----------------------------------------------------------------


def test_the_owner_invites_with_forged_fields_and_gets_exactly_the_invitation(
    world: World,
) -> None:
    before = snapshot()
    client = browser(world.owner, world.a)
    data = {
        **forged(world, with_permissions=False),
        "email": "newcomer@example.com",
        "access": "choose",
        "permissions": ["invoices"],
    }
    response = post(client, url("accounts:user_invite"), data)
    assert response.status_code == 302
    created = Invitation.objects.get(email="newcomer@example.com")
    assert diff(before, snapshot()) == {"invitations": {"added": [created.pk]}}
    assert created.account == world.a
    assert created.permissions == ["invoices"]
    assert created.status == Invitation.Status.PENDING
    assert created.invited_by == world.owner
    assert created.access_expires_at is None


@pytest.mark.parametrize("garbage", GARBAGE_PERMISSIONS, ids=repr)
def test_an_invitation_with_garbage_permissions_is_refused(world: World, garbage: Any) -> None:
    before = snapshot()
    client = browser(world.owner, world.a)
    data = {"email": "newcomer@example.com", "access": "choose", "permissions": garbage}
    response = post(client, url("accounts:user_invite"), data)
    assert response.status_code == 200  # the form again, with its error
    assert diff(before, snapshot()) == {}


@pytest.mark.parametrize(
    ("posted", "stored"),
    [
        ("profile", ["profile"]),  # a single string is one code
        (["manageproducts"], ["products", "manageproducts"]),  # implied codes are added
        (["emails", "invoices", "invoices"], ["invoices", "emails"]),
    ],
)
def test_invited_permissions_are_stored_as_the_catalogue_says(
    world: World, posted: Any, stored: list[str]
) -> None:
    client = browser(world.owner, world.a)
    data = {"email": "newcomer@example.com", "access": "choose", "permissions": posted}
    assert post(client, url("accounts:user_invite"), data).status_code == 302
    assert Invitation.objects.get(email="newcomer@example.com").permissions == stored


@pytest.mark.parametrize("actor", ["sub", "b_sub"])
def test_a_sub_account_cannot_invite(world: World, actor: str) -> None:
    before = snapshot()
    client = browser(world.actor(actor), world.home(actor))
    data = {**forged(world), "email": "accomplice@example.com"}
    assert post(client, url("accounts:user_invite"), data).status_code == 403
    assert diff(before, snapshot()) == {}


def test_another_owner_naming_the_account_invites_only_to_their_own(world: World) -> None:
    before = snapshot()
    client = browser(world.b.owner, world.b)
    data = {
        **forged(world, with_permissions=False),
        "account": world.a.pk,
        "account_id": world.a.pk,
        "email": "accomplice@example.com",
        "access": "choose",
        "permissions": ["tickets"],
    }
    assert post(client, url("accounts:user_invite"), data).status_code == 302
    created = Invitation.objects.get(email="accomplice@example.com")
    assert (created.account, created.permissions) == (world.b, ["tickets"])
    assert diff(before, snapshot()) == {"invitations": {"added": [created.pk]}}


# --- Edit a user's permissions ----------------------------------------------------------


def test_the_owner_edits_permissions_with_forged_fields_and_only_permissions_change(
    world: World,
) -> None:
    before = snapshot()
    client = browser(world.owner, world.a)
    data = {
        **forged(world, with_permissions=False),
        "status": "revoked",
        "access": "choose",
        "permissions": ["invoices"],
    }
    response = post(client, url("accounts:user_edit", world.member.pk), data)
    assert response.status_code == 302
    assert diff(before, snapshot()) == {
        "memberships": {"changed": {world.member.pk: {"permissions": (["tickets"], ["invoices"])}}}
    }
    assert owners_have_no_membership()


@pytest.mark.parametrize("garbage", GARBAGE_PERMISSIONS, ids=repr)
def test_editing_with_garbage_permissions_changes_nothing(world: World, garbage: Any) -> None:
    before = snapshot()
    client = browser(world.owner, world.a)
    data = {"access": "choose", "permissions": garbage}
    response = post(client, url("accounts:user_edit", world.member.pk), data)
    assert response.status_code == 200
    assert diff(before, snapshot()) == {}


def test_a_revoked_membership_cannot_be_brought_back_by_an_edit(world: World) -> None:
    membership_revoke(membership=world.member, actor=world.owner)
    before = snapshot()
    client = browser(world.owner, world.a)
    data = {**forged(world, with_permissions=False), "access": "all", "status": "active"}
    response = post(client, url("accounts:user_edit", world.member.pk), data)
    assert response.status_code == 200
    assert "invite them again" in response.content.decode()
    assert diff(before, snapshot()) == {}


@pytest.mark.parametrize("target", ["self", "member"])
def test_a_sub_account_with_every_permission_cannot_grant_itself_or_anyone(
    world: World, target: str
) -> None:
    world.sub.permissions = ["tickets"]
    world.sub.save()
    before = snapshot()
    membership = world.sub if target == "self" else world.member
    client = browser(world.sub.user, world.a)
    for name in ("accounts:user_edit", "accounts:user_revoke"):
        response = post(client, url(name, membership.pk), forged(world))
        assert response.status_code == 403
    assert diff(before, snapshot()) == {}


def test_services_refuse_anyone_but_the_owner_whatever_the_view_did(world: World) -> None:
    before = snapshot()
    sub = world.sub.user
    with pytest.raises(AccessError):
        membership_update(membership=world.sub, actor=sub, permission_codes=ALL, expires_at=None)
    with pytest.raises(AccessError):
        membership_update(membership=world.member, actor=sub, permission_codes=ALL, expires_at=None)
    with pytest.raises(AccessError):
        membership_revoke(membership=world.member, actor=sub)
    with pytest.raises(AccessError):
        invitation_create(
            account=world.a, actor=sub, email="accomplice@example.com", permission_codes=ALL
        )
    with pytest.raises(AccessError):
        invitation_resend(invitation=world.invitation, actor=sub)
    with pytest.raises(AccessError):
        invitation_cancel(invitation=world.invitation, actor=sub)
    with pytest.raises(AccessError):  # the owner never gets a membership
        membership_grant(account=world.a, user=world.owner, permission_codes=ALL)
    with pytest.raises(AccessError):  # nor can B's owner act on A
        membership_update(
            membership=world.member, actor=world.b.owner, permission_codes=ALL, expires_at=None
        )
    assert diff(before, snapshot()) == {}


# --- Revoke Access, resend and cancel invitations ---------------------------------------


def test_revoke_with_forged_ids_revokes_only_the_membership_of_the_url(world: World) -> None:
    before = snapshot()
    client = browser(world.owner, world.a)
    response = post(client, url("accounts:user_revoke", world.member.pk), forged(world))
    assert response.status_code == 302
    assert diff(before, snapshot()) == {
        "memberships": {"changed": {world.member.pk: {"status": ("active", "revoked")}}}
    }


def test_resend_with_forged_fields_changes_only_the_link(world: World) -> None:
    before = snapshot()
    client = browser(world.owner, world.a)
    data = {**forged(world), "email": "attacker@example.com"}
    response = post(client, url("accounts:invitation_resend", world.invitation.pk), data)
    assert response.status_code == 302
    changes = diff(before, snapshot())
    assert list(changes) == ["invitations"]
    assert list(changes["invitations"]) == ["changed"]
    assert set(changes["invitations"]["changed"]) == {world.invitation.pk}
    # A new link (and a new 7 days), same address, permissions and account.
    changed = set(changes["invitations"]["changed"][world.invitation.pk])
    assert "token_hash" in changed and changed <= {"token_hash", "expires_at"}


def test_cancel_with_forged_fields_cancels_only_the_invitation_of_the_url(world: World) -> None:
    before = snapshot()
    client = browser(world.owner, world.a)
    response = post(client, url("accounts:invitation_cancel", world.invitation.pk), forged(world))
    assert response.status_code == 302
    assert diff(before, snapshot()) == {
        "invitations": {"changed": {world.invitation.pk: {"status": ("pending", "cancelled")}}}
    }


@pytest.mark.parametrize("route", ["accounts:invitation_resend", "accounts:invitation_cancel"])
def test_a_sub_account_cannot_resend_or_cancel(world: World, route: str) -> None:
    before = snapshot()
    client = browser(world.sub.user, world.a)
    assert post(client, url(route, world.invitation.pk), forged(world)).status_code == 403
    assert diff(before, snapshot()) == {}


# --- Another account's ids --------------------------------------------------------------

A_OBJECT_FORMS = [
    ("accounts:user_edit", "member", {"access": "all"}),
    ("accounts:user_revoke", "member", {}),
    ("accounts:invitation_resend", "invitation", {}),
    ("accounts:invitation_cancel", "invitation", {}),
    ("accounts:contact_edit", "contact", {"name": "Mallory", "email": "mallory@example.com"}),
    ("accounts:contact_remove", "contact", {}),
]


@pytest.mark.parametrize("actor", ["b_owner", "b_sub"])
@pytest.mark.parametrize(("route", "obj", "data"), A_OBJECT_FORMS, ids=lambda v: str(v))
def test_a_member_of_another_account_posting_its_ids_gets_404(
    world: World, actor: str, route: str, obj: str, data: dict[str, Any]
) -> None:
    """B's owner and B's all-permissions sub-account, working in B, post A's membership,
    invitation and contact ids (naming A in forged fields too): 404, nothing changes. (A
    sub-account of B is refused owner-only routes with 403 before any lookup.)"""
    before = snapshot()
    client = browser(world.actor(actor), world.b)
    target = getattr(world, obj).pk
    fields = {**forged(world), "account": world.a.pk, "account_id": world.a.pk, **data}
    owner_only = not route.startswith("accounts:contact")
    want = 403 if actor == "b_sub" and owner_only else 404
    assert post(client, url(route, target), fields).status_code == want
    assert diff(before, snapshot()) == {}


def test_the_owner_of_a_cannot_reach_b_s_objects_either(world: World) -> None:
    before = snapshot()
    client = browser(world.owner, world.a)
    for route, obj, data in A_OBJECT_FORMS:
        target = getattr(world, f"b_{obj}").pk
        response = post(client, url(route, target), {**forged(world), **data})
        assert response.status_code == 404, route
    assert diff(before, snapshot()) == {}


# --- Accepting an invitation ------------------------------------------------------------


def test_a_new_user_accepting_with_forged_fields_gets_exactly_what_was_granted(
    world: World,
) -> None:
    before = snapshot()
    client = browser()
    data = {
        **forged(world),
        "email": "attacker@example.com",
        "first_name": "Nia",
        "last_name": "Quinn",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
        "access_expires_at": "",
    }
    response = post(client, open_invitation(client, world.token), data)
    assert response.status_code == 302
    user = User.objects.get(email="invitee@example.com")
    membership = Membership.objects.get(user=user)
    assert not User.objects.filter(email="attacker@example.com").exists()
    assert (user.is_staff, user.is_superuser) == (False, False)
    assert membership.account == world.a
    assert membership.permissions == ["invoices"]
    assert membership.expires_at is None
    assert diff(before, snapshot()) == {
        "users": {"added": [user.pk]},
        "memberships": {"added": [membership.pk]},
        "invitations": {
            "changed": {
                world.invitation.pk: {
                    "status": ("pending", "accepted"),
                    "accepted_by_id": (None, user.pk),
                }
            }
        },
    }
    assert client.session[SESSION_ACCOUNT_KEY] == world.a.pk


def test_a_known_user_accepting_with_forged_fields_gets_exactly_what_was_granted(
    world: World,
) -> None:
    """Someone who is a member of B accepts an invitation to A naming B, all permissions
    and ownership: A gives View & Pay Invoices, B is untouched."""
    person: User = UserFactory(email="known@example.com")
    on_b = MembershipFactory(account=world.b, user=person, permissions=["tickets"])
    invitation = invitation_create(
        account=world.a, actor=world.owner, email=person.email, permission_codes=["invoices"]
    )
    token = invitation_token_from_outbox(person.email)
    before = snapshot()
    client = browser(person, world.b)
    response = post(client, open_invitation(client, token), forged(world))
    assert response.status_code == 302
    membership = Membership.objects.get(account=world.a, user=person)
    assert membership.permissions == ["invoices"]
    changes = diff(before, snapshot())
    assert changes == {
        "memberships": {"added": [membership.pk]},
        "invitations": {
            "changed": {
                invitation.pk: {
                    "status": ("pending", "accepted"),
                    "accepted_by_id": (None, person.pk),
                }
            }
        },
    }
    on_b.refresh_from_db()
    assert on_b.permissions == ["tickets"]


@pytest.mark.parametrize("actor", ["sub", "b_sub", "owner"])
def test_nobody_else_can_accept_an_invitation(world: World, actor: str) -> None:
    before = snapshot()
    client = browser(world.actor(actor), world.home(actor))
    response = post(client, open_invitation(client, world.token), forged(world))
    assert response.status_code == 403
    assert diff(before, snapshot()) == {}


# --- Switch Account ---------------------------------------------------------------------


@pytest.mark.parametrize("actor", ["owner", "sub"])
def test_switching_to_an_account_one_has_no_access_to_is_404(world: World, actor: str) -> None:
    client = browser(world.actor(actor), world.a)
    before = snapshot()
    for data in (
        {"account": world.b.pk},
        {"account": world.b.pk, "is_owner": "on", "account_id": world.b.pk},
    ):
        assert post(client, url("accounts:select_account"), data).status_code == 404
        assert client.session[SESSION_ACCOUNT_KEY] == world.a.pk
    # Forged fields next to a legitimate choice are ignored: the session is in A.
    data = {"account": world.a.pk, "account_id": world.b.pk, "current_account_id": world.b.pk}
    assert post(client, url("accounts:select_account"), data).status_code == 302
    assert client.session[SESSION_ACCOUNT_KEY] == world.a.pk
    for garbage in ("", "B", "-1", "0", "1 OR 1=1"):
        response = post(client, url("accounts:select_account"), {"account": garbage})
        assert response.status_code == 302
        assert client.session[SESSION_ACCOUNT_KEY] == world.a.pk
    assert client.get(url("accounts:users")).status_code == (200 if actor == "owner" else 403)
    assert diff(before, snapshot()) == {}


# --- Account profile, contacts, the user's profile, require two-factor ------------------

PROFILE = {
    "company_name": "Renamed Ltd",
    "address_line1": "1 Quay Street",
    "address_line2": "",
    "city": "Galway",
    "postcode": "H91 AAAA",
    "country": "ie",
}


@pytest.mark.parametrize("actor", ["owner", "sub", "only_profile"])
def test_the_account_profile_form_changes_only_profile_fields(world: World, actor: str) -> None:
    if actor == "only_profile":
        user = MembershipFactory(account=world.a, permissions=["profile"]).user
    else:
        user = world.actor(actor)
    before = snapshot()
    client = browser(user, world.a)
    data = {**forged(world), **PROFILE}
    assert post(client, url("accounts:account_profile"), data).status_code == 302
    a = before["accounts"][world.a.pk]
    assert diff(before, snapshot()) == {
        "accounts": {
            "changed": {
                world.a.pk: {
                    "company_name": (a["company_name"], "Renamed Ltd"),
                    "address_line1": (a["address_line1"], "1 Quay Street"),
                    "city": (a["city"], "Galway"),
                    "postcode": (a["postcode"], "H91 AAAA"),
                }
            }
        }
    }


def test_contacts_are_added_and_edited_only_on_the_session_s_account(world: World) -> None:
    client = browser(world.sub.user, world.a)
    before = snapshot()
    data = {
        **forged(world),
        "name": "Finance Desk",
        "email": "finance@example.com",
        "email_kinds": ["invoice"],
    }
    assert post(client, url("accounts:contact_add"), data).status_code == 302
    added = Contact.objects.get(email="finance@example.com")
    assert added.account == world.a
    data = {**data, "name": "Finance Team"}
    assert post(client, url("accounts:contact_edit", added.pk), data).status_code == 302
    assert diff(before, snapshot()) == {"contacts": {"added": [added.pk]}}
    added.refresh_from_db()
    assert (added.account, added.name) == (world.a, "Finance Team")
    # B's contact, through A's session: 404, whatever account the fields name.
    data = {**data, "account": world.b.pk}
    response = post(client, url("accounts:contact_edit", world.b_contact.pk), data)
    assert response.status_code == 404


def test_the_user_profile_form_changes_only_the_name(world: World) -> None:
    before = snapshot()
    client = browser(world.sub.user, world.a)
    data = {
        **forged(world),
        "first_name": "Eve",
        "last_name": "Example",
        "email": world.owner.email,
        "password": "",
        "date_joined": "2000-01-01",
    }
    assert post(client, url("accounts:profile"), data).status_code == 302
    assert diff(before, snapshot()) == {}
    world.sub.user.refresh_from_db()
    assert world.sub.user.get_full_name() == "Eve Example"
    event = AuditEvent.objects.get(action="user.profile_changed")
    assert event.changes["first_name"][1] == "Eve"


@pytest.mark.parametrize("actor", ["owner", "sub"])
def test_require_two_factor_applies_only_to_the_owner_s_own_account(
    world: World, actor: str
) -> None:
    two_factor_on(world.owner)
    two_factor_on(world.sub.user)
    before = snapshot()
    client = browser(world.actor(actor), world.a)
    data = {**forged(world), "required": "on"}
    response = post(client, url("security:require_two_factor"), data)
    if actor == "sub":
        assert response.status_code == 403
        assert diff(before, snapshot()) == {}
    else:
        assert response.status_code == 302
        assert diff(before, snapshot()) == {"security": {"added": [world.a.pk]}}
        assert AccountSecurity.objects.get().require_two_factor


# --- Every POST route, from a sub-account holding every permission ----------------------


def _post_routes() -> list[Any]:
    return [
        pytest.param(r, target, id=f"{r.name}-{target}")
        for r in ROUTES
        if "POST" in r.methods and r.rule != "public"
        for target in (("A", "B") if r.object_param else ("-",))
    ]


@pytest.mark.parametrize(("route", "target"), _post_routes())
def test_no_post_route_lets_a_sub_account_change_access(
    world: World, route: Route, target: str
) -> None:
    """Whatever it may legitimately do there, a sub-account with every permission that
    posts forged access fields to any route changes no owner, membership, invitation,
    user flag or security setting, of its account or of another."""
    kwargs: dict[str, Any] = dict(STATIC_KWARGS.get(route.name, {}))
    if route.object_param:
        kwargs.update(OBJECT_KWARGS[route.name](world.a if target == "A" else world.b))
    before = snapshot()
    client = browser(world.sub.user, world.a)
    response = post(client, reverse(route.name, kwargs=kwargs or None), forged(world))
    assert response.status_code < 500
    access_tables = ("memberships", "invitations", "security", "users")
    changes = diff(before, snapshot())
    assert {t: changes[t] for t in access_tables if t in changes} == {}
    owners = {pk: a["owner_id"] for pk, a in before["accounts"].items()}
    assert dict(Account.objects.values_list("pk", "owner_id")) == owners
    assert owners_have_no_membership()
    assert client.cookies["csrftoken"].value == CSRF
