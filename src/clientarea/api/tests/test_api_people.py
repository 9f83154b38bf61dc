"""People over the API (the profile, contacts, Email History, users and invitations) from
the attacker's side: another account's ids (404, before the body is read), a token
without the permission (403), a sub-account's token or an owner's token without the
Users power on users and invitations (403), a dead token or creator (401), bad input (a
clear 400 and nothing changed); and that the writes do what the pages do (audit, emails)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from clientarea.accounts.models import Account, Contact, Invitation, Membership
from clientarea.accounts.policy import access_for
from clientarea.accounts.services import membership_revoke
from clientarea.accounts.tests.factories import (
    ContactFactory,
    InvitationFactory,
    MembershipFactory,
)
from clientarea.api.models import ApiToken
from clientarea.audit.models import AuditEvent
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.selectors import email_history_for
from clientarea.notifications.services import email_queue

from .helpers import assert_problem, make_token

pytestmark = pytest.mark.django_db
TOKEN_MAIL = "You created an API token"
ALL = ["profile", "contacts", "products", "domains", "invoices", "tickets", "emails"]


def call(secret: str | None, method: str, path: str, body: Any = None) -> Any:
    extra: dict[str, Any] = {}
    if secret is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    data = json.dumps(body) if body is not None else ""
    return Client().generic(method, path, data, content_type="application/json", **extra)


def _snapshot() -> dict[str, Any]:
    return {
        "accounts": list(Account.objects.order_by("pk").values()),
        "contacts": list(Contact.objects.order_by("pk").values()),
        "memberships": list(Membership.objects.order_by("pk").values()),
        "invitations": list(Invitation.objects.order_by("pk").values()),
        "audit": AuditEvent.objects.exclude(action__startswith="api_token").count(),
        "emails": OutboxEmail.objects.exclude(subject__startswith=TOKEN_MAIL).count(),
    }


# --- PATCH /api/v1/account ------------------------------------------------------------------


def test_profile_changed_as_on_the_page_and_audited(account: Account) -> None:
    _, secret = make_token(account, codes=["profile"])
    response = call(secret, "PATCH", "/api/v1/account", {"city": "Cork", "postcode": "T12 X"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["profile"]["city"] == "Cork" and body["id"] == account.pk
    account.refresh_from_db()
    assert (account.city, account.postcode) == ("Cork", "T12 X")
    event = AuditEvent.objects.get(action="account.profile_changed")
    assert event.actor == account.owner and set(event.changes) == {"city", "postcode"}
    # GET is still the read of any token, on the same path.
    assert call(secret, "GET", "/api/v1/account").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"country": "XX"}, "country"),
        ({"tax_number": "not a vat number"}, "tax_number"),
        ({"city": "Line\nbreak"}, "city"),
        ({"company_name": "x" * 500}, "company_name"),
        ({"owner": 5}, "owner"),
        ({}, "non_field_errors"),
        ({"city": None}, "city"),
        (["city"], "non_field_errors"),
    ],
)
def test_bad_profile_input_is_a_clear_400_and_changes_nothing(
    account: Account, body: Any, field: str
) -> None:
    _, secret = make_token(account, codes=["profile"])
    before = _snapshot()
    response = call(secret, "PATCH", "/api/v1/account", body)
    problem = assert_problem(response, 400)
    assert field in problem["errors"], problem
    assert _snapshot() == before


def test_profile_needs_the_permission_now(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("profile", "invoices")
    _, without = make_token(account, codes=["invoices"])
    _, secret = make_token(account, member.user, codes=["profile"])
    before = _snapshot()
    assert_problem(call(without, "PATCH", "/api/v1/account", {"city": "X"}), 403)
    Membership.objects.filter(pk=member.pk).update(permissions=["invoices"])
    assert_problem(call(secret, "PATCH", "/api/v1/account", {"city": "X"}), 403)
    membership_revoke(membership=member, actor=account.owner)
    before["memberships"] = list(Membership.objects.order_by("pk").values())
    before["audit"] = AuditEvent.objects.exclude(action__startswith="api_token").count()
    before["emails"] = OutboxEmail.objects.exclude(subject__startswith=TOKEN_MAIL).count()
    assert_problem(call(secret, "PATCH", "/api/v1/account", {"city": "X"}), 401)
    assert _snapshot() == before


# --- contacts ---------------------------------------------------------------------------

CONTACT = {"name": "Bea Byrne", "email": "bea@example.org", "email_kinds": ["general"]}


def test_contacts_listed_are_the_accounts_own(account: Account, other_account: Account) -> None:
    mine = ContactFactory(account=account)
    ContactFactory(account=other_account)
    _, secret = make_token(account, codes=["contacts"])
    response = call(secret, "GET", "/api/v1/contacts")
    assert response.status_code == 200
    assert [c["id"] for c in response.json()["results"]] == [mine.pk]
    _, without = make_token(account, codes=["invoices"])
    assert_problem(call(without, "GET", "/api/v1/contacts"), 403)


def test_contact_added_confirmation_emailed_and_audited(account: Account) -> None:
    _, secret = make_token(account, codes=["contacts"])
    response = call(secret, "POST", "/api/v1/contacts", CONTACT)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["confirmed"] is False and body["email_kinds"] == ["general"]
    contact = Contact.objects.get(pk=body["id"])
    assert contact.account == account
    (email,) = OutboxEmail.objects.filter(to_email="bea@example.org")
    assert email.subject.startswith("Confirm that you want emails")
    assert AuditEvent.objects.get(action="contact.added").actor == account.owner


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**CONTACT, "email": "not-an-address"}, "email"),
        ({**CONTACT, "name": "Two\nlines"}, "name"),
        ({**CONTACT, "email_kinds": []}, "email_kinds"),
        ({**CONTACT, "email_kinds": ["security"]}, "email_kinds"),
        ({**CONTACT, "phone": "call me"}, "phone"),
        ({"name": "No address"}, "email"),
    ],
)
def test_bad_contact_input_is_a_clear_400_and_changes_nothing(
    account: Account, body: Any, field: str
) -> None:
    _, secret = make_token(account, codes=["contacts"])
    before = _snapshot()
    problem = assert_problem(call(secret, "POST", "/api/v1/contacts", body), 400)
    assert any(name.split(".")[0] == field for name in problem["errors"]), problem
    assert _snapshot() == before


def test_a_token_chooses_only_kinds_its_access_reads(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("contacts", "invoices")
    _, secret = make_token(account, member.user, codes=["contacts"])
    before = _snapshot()
    # The creator reads invoices, but this token does not carry them: not its to give.
    body = {**CONTACT, "email_kinds": ["general", "invoice"]}
    problem = assert_problem(call(secret, "POST", "/api/v1/contacts", body), 400)
    assert "You can only choose emails you can read yourself" in problem["detail"]
    assert _snapshot() == before


def test_another_accounts_contact_is_a_404_before_the_body(
    account: Account, other_account: Account
) -> None:
    theirs = ContactFactory(account=other_account, confirmed_at=None)
    _, secret = make_token(account, codes=["contacts"])
    before = _snapshot()
    base = f"/api/v1/contacts/{theirs.pk}"
    assert_problem(call(secret, "GET", base), 404)
    assert_problem(call(secret, "PATCH", base, {"name": "Line\nbreak"}), 404)
    assert_problem(call(secret, "PATCH", base, {"name": "Hijacked"}), 404)
    assert_problem(call(secret, "DELETE", base), 404)
    assert_problem(call(secret, "POST", f"{base}/confirmation"), 404)
    assert_problem(call(secret, "GET", f"/api/v1/contacts/{2**63}"), 404)
    assert _snapshot() == before


def test_contact_changed_removed_and_resent_as_on_the_page(account: Account) -> None:
    contact = ContactFactory(account=account, email="old@example.org")
    _, secret = make_token(account, codes=["contacts"])
    path = f"/api/v1/contacts/{contact.pk}"
    assert call(secret, "GET", path).json()["email"] == "old@example.org"
    response = call(secret, "PATCH", path, {"name": "Renamed"})
    assert response.status_code == 200 and response.json()["name"] == "Renamed"
    assert response.json()["confirmed"] is True  # same address: still confirmed
    assert not OutboxEmail.objects.filter(subject__startswith="Confirm that").exists()
    # Already confirmed: nothing to resend.
    assert_problem(call(secret, "POST", f"{path}/confirmation"), 400)
    response = call(secret, "PATCH", path, {"email": "new@example.org"})
    assert response.status_code == 200 and response.json()["confirmed"] is False
    assert OutboxEmail.objects.filter(to_email="new@example.org").count() == 1
    assert call(secret, "POST", f"{path}/confirmation").status_code == 200
    assert OutboxEmail.objects.filter(to_email="new@example.org").count() == 2
    assert call(secret, "DELETE", path).status_code == 204
    assert not Contact.objects.filter(pk=contact.pk).exists()
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"contact.changed", "contact.confirmation_resent", "contact.removed"} <= actions


def test_contacts_die_with_the_creators_access(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("contacts")
    contact = ContactFactory(account=account)
    _, secret = make_token(account, member.user, codes=["contacts"])
    membership_revoke(membership=member, actor=account.owner)
    before = _snapshot()
    assert_problem(call(secret, "DELETE", f"/api/v1/contacts/{contact.pk}"), 401)
    assert_problem(call(secret, "POST", "/api/v1/contacts", CONTACT), 401)
    assert _snapshot() == before


def test_contact_list_queries_do_not_grow(account: Account) -> None:
    _, secret = make_token(account, codes=["contacts"])

    def count(n: int) -> int:
        Contact.objects.all().delete()
        for _ in range(n):
            ContactFactory(account=account)
        with CaptureQueriesContext(connection) as queries:
            assert call(secret, "GET", "/api/v1/contacts?page_size=50").status_code == 200
        return len(queries)

    count(1)  # the token's first use is written down once: not part of the list's cost
    assert count(3) == count(30)


# --- Email History ------------------------------------------------------------------------


def _email(account: Account, **kwargs: Any) -> OutboxEmail:
    kwargs.setdefault("to_email", "owner@example.org")
    return email_queue(subject="Hello", body="Body text", account=account, **kwargs)


def test_email_history_is_exactly_what_the_page_shows(
    account: Account, other_account: Account, member_factory: Callable[..., Membership]
) -> None:
    service = ServiceFactory(account=account)
    other_service = ServiceFactory(account=account)
    member = member_factory("emails", "products", scope={"service": [service.pk]})
    rows = [
        _email(account),
        _email(account, kind="invoice"),
        _email(account, kind="product", about=("service", service.pk)),
        _email(account, kind="product", about=("service", other_service.pk)),
        _email(account, kind="personal", recipient_user=member.user),
        _email(account, kind="personal", recipient_user=account.owner),
        _email(other_account),
    ]
    _, secret = make_token(account, member.user, codes=["emails", "products"])
    listed = [e["id"] for e in call(secret, "GET", "/api/v1/emails").json()["results"]]
    access = access_for(member.user, account.pk)
    assert access is not None
    expected = sorted(email_history_for(access).values_list("pk", flat=True), reverse=True)
    assert listed == expected
    # The general email, the product email about their service and their own personal
    # emails (this token's creation notice too); not the invoice email, the other
    # service's, the owner's personal one or another account's.
    shown = {rows[0].pk, rows[2].pk, rows[4].pk}
    assert shown <= set(listed)
    assert not {rows[1].pk, rows[3].pk, rows[5].pk, rows[6].pk} & set(listed)
    for row in rows:
        response = call(secret, "GET", f"/api/v1/emails/{row.pk}")
        if row.pk in listed:
            assert response.status_code == 200 and response.json()["body"] == "Body text"
        else:
            assert_problem(response, 404)


def test_email_detail_hides_what_the_page_hides(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    contact = ContactFactory(account=account)
    to_contact = _email(
        account, to_email=contact.email, audience="contact", recipient_contact=contact
    )
    with_link = _email(account, redact=["https://example.org/secret-link"])
    member = member_factory("emails")
    _, secret = make_token(account, member.user, codes=["emails"])
    body = call(secret, "GET", f"/api/v1/emails/{to_contact.pk}").json()
    assert body["to_email"] is None and body["to_name"] is None
    _, owner_secret = make_token(account, codes=["emails", "contacts"])
    assert call(owner_secret, "GET", f"/api/v1/emails/{to_contact.pk}").json()["to_email"]
    if with_link.body_after_send:
        assert call(secret, "GET", f"/api/v1/emails/{with_link.pk}").json()["body"] is None
    _, without = make_token(account, codes=["invoices"])
    assert_problem(call(without, "GET", "/api/v1/emails"), 403)
    assert_problem(call(without, "GET", f"/api/v1/emails/{to_contact.pk}"), 403)


# --- users and invitations --------------------------------------------------------------------

OWNER_ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "/api/v1/users", None),
    ("PATCH", "/api/v1/users/{member}", {"permissions": ["invoices", "tickets"]}),
    ("DELETE", "/api/v1/users/{member}", None),
    ("GET", "/api/v1/invitations", None),
    ("POST", "/api/v1/invitations", {"email": "new@example.org", "permissions": ["invoices"]}),
    ("POST", "/api/v1/invitations/{invitation}/resend", None),
    ("DELETE", "/api/v1/invitations/{invitation}", None),
]


def _path(template: str, member: Membership, invitation: Invitation) -> str:
    return template.format(member=member.pk, invitation=invitation.pk)


@pytest.mark.parametrize(("method", "template", "body"), OWNER_ENDPOINTS)
def test_only_an_owner_token_with_the_users_power_manages_users(
    account: Account,
    member_factory: Callable[..., Membership],
    method: str,
    template: str,
    body: Any,
) -> None:
    member = member_factory("invoices")
    partner = member_factory(*ALL)
    invitation = InvitationFactory(account=account)
    _, plain_owner = make_token(account, codes=ALL)
    _, partners = make_token(account, partner.user, codes=ALL)
    path = _path(template, member, invitation)
    before = _snapshot()
    for secret in (plain_owner, partners):
        problem = assert_problem(call(secret, method, path, body), 403)
        assert "Users power" in problem["detail"]
    assert _snapshot() == before
    _, powered = make_token(account, codes=ALL, manages_users=True)
    assert call(powered, method, path, body).status_code in (200, 201, 204)


@pytest.mark.parametrize(
    ("method", "template", "body"), [e for e in OWNER_ENDPOINTS if "{" in e[1]]
)
def test_another_accounts_users_and_invitations_are_a_404(
    account: Account, other_account: Account, method: str, template: str, body: Any
) -> None:
    member = MembershipFactory(account=other_account, permissions=["invoices"])
    invitation = InvitationFactory(account=other_account)
    _, powered = make_token(account, codes=["invoices"], manages_users=True)
    before = _snapshot()
    assert_problem(call(powered, method, _path(template, member, invitation), body), 404)
    # Checked before the body: a bad body on another account's id is still a 404.
    if body is not None:
        bad = {"permissions": ["root"]}
        assert_problem(call(powered, method, _path(template, member, invitation), bad), 404)
    assert _snapshot() == before


def test_users_listed_changed_and_revoked_as_on_the_page(
    account: Account, other_account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("invoices")
    MembershipFactory(account=other_account, permissions=["invoices"])
    service = ServiceFactory(account=account)
    _, member_secret = make_token(account, member.user, codes=["invoices"])
    _, powered = make_token(account, codes=ALL, manages_users=True)
    listed = call(powered, "GET", "/api/v1/users").json()["results"]
    assert [u["id"] for u in listed] == [member.pk]
    assert listed[0]["email"] == member.user.email and listed[0]["usable"] is True
    body = {"permissions": ["tickets", "products"], "scope": {"service": [service.pk]}}
    response = call(powered, "PATCH", f"/api/v1/users/{member.pk}", body)
    assert response.status_code == 200, response.content
    assert response.json()["permissions"] == ["products", "tickets"]
    assert response.json()["scope"] == {"service": [service.pk], "domain": []}
    member.refresh_from_db()
    assert member.permissions == ["products", "tickets"]
    assert OutboxEmail.objects.filter(
        to_email=member.user.email, subject__startswith="Your permissions on"
    ).exists()
    event = AuditEvent.objects.get(action="membership.permissions_changed")
    assert event.actor == account.owner
    # Leaving fields out keeps them.
    response = call(powered, "PATCH", f"/api/v1/users/{member.pk}", {"access_expires_on": None})
    assert response.json()["scope"] == {"service": [service.pk], "domain": []}
    assert call(powered, "DELETE", f"/api/v1/users/{member.pk}").status_code == 204
    member.refresh_from_db()
    assert member.status == Membership.Status.REVOKED
    assert OutboxEmail.objects.filter(
        to_email=member.user.email, subject__startswith="Your access to"
    ).exists()
    # Their token died with their access.
    assert_problem(call(member_secret, "GET", "/api/v1/invoices"), 401)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"permissions": ["root"]}, "permissions"),
        ({"permissions": []}, "permissions"),
        ({"scope": {"service": [10**9]}}, "scope"),
        ({"scope": {}}, "scope"),
        ({"access_expires_on": "2000-01-01"}, "access_expires_on"),
        ({"access_expires_on": "soon"}, "access_expires_on"),
        ({"permissions": "invoices"}, "permissions"),
    ],
)
def test_bad_grant_input_is_a_clear_400_and_changes_nothing(
    account: Account, member_factory: Callable[..., Membership], body: Any, field: str
) -> None:
    member = member_factory("invoices")
    _, powered = make_token(account, codes=["invoices"], manages_users=True)
    before = _snapshot()
    problem = assert_problem(call(powered, "PATCH", f"/api/v1/users/{member.pk}", body), 400)
    assert any(name.split(".")[0] == field for name in problem["errors"]), problem
    invite = {"email": "new@example.org", "permissions": ["invoices"], **body}
    problem = assert_problem(call(powered, "POST", "/api/v1/invitations", invite), 400)
    assert any(name.split(".")[0] == field for name in problem["errors"]), problem
    assert _snapshot() == before


def test_another_accounts_service_in_a_scope_is_refused(
    account: Account, other_account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("products")
    theirs = ServiceFactory(account=other_account)
    _, powered = make_token(account, codes=["invoices"], manages_users=True)
    before = _snapshot()
    body = {"scope": {"service": [theirs.pk]}}
    problem = assert_problem(call(powered, "PATCH", f"/api/v1/users/{member.pk}", body), 400)
    assert "scope" in problem["errors"]
    assert _snapshot() == before


def test_invitation_sent_listed_resent_and_cancelled_never_showing_its_link(
    account: Account,
) -> None:
    _, powered = make_token(account, codes=["invoices"], manages_users=True)
    body = {"email": "New.Person@Example.org", "permissions": ["invoices"]}
    response = call(powered, "POST", "/api/v1/invitations", body)
    assert response.status_code == 201, response.content
    created = response.json()
    invitation = Invitation.objects.get(pk=created["id"])
    assert invitation.invited_by == account.owner and invitation.permissions == ["invoices"]
    (email,) = OutboxEmail.objects.filter(to_email=invitation.email)
    assert "invited you to" in email.subject
    listed = call(powered, "GET", "/api/v1/invitations").json()["results"]
    assert [i["id"] for i in listed] == [invitation.pk]
    for answer in (created, listed[0]):
        text = json.dumps(answer)
        assert "token" not in text and "/invitation/" not in text
        assert invitation.token_hash not in text
    assert call(powered, "POST", f"/api/v1/invitations/{invitation.pk}/resend").status_code == 200
    assert OutboxEmail.objects.filter(to_email=invitation.email).count() == 2
    assert call(powered, "DELETE", f"/api/v1/invitations/{invitation.pk}").status_code == 204
    invitation.refresh_from_db()
    assert invitation.status == Invitation.Status.CANCELLED
    # Cancelled: neither resent nor cancelled again, with the page's sentence.
    assert_problem(call(powered, "POST", f"/api/v1/invitations/{invitation.pk}/resend"), 400)
    assert_problem(call(powered, "DELETE", f"/api/v1/invitations/{invitation.pk}"), 400)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"invitation.sent", "invitation.resent", "invitation.cancelled"} <= actions


def test_inviting_someone_with_access_is_refused_with_the_pages_sentence(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("invoices")
    _, powered = make_token(account, codes=["invoices"], manages_users=True)
    before = _snapshot()
    body = {"email": member.user.email, "permissions": ["invoices"]}
    problem = assert_problem(call(powered, "POST", "/api/v1/invitations", body), 400)
    assert "already has access" in problem["detail"]
    assert _snapshot() == before


def test_the_users_power_ends_when_ownership_moves(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    member = member_factory("invoices")
    _, powered = make_token(account, codes=["invoices"], manages_users=True)
    newcomer = member_factory("invoices").user
    Account.objects.filter(pk=account.pk).update(owner=newcomer)
    before = _snapshot()
    assert_problem(call(powered, "DELETE", f"/api/v1/users/{member.pk}"), 401)
    assert _snapshot() == before
    assert ApiToken.objects.count() == 1


def test_invitations_sent_are_limited_as_from_the_page(account: Account, settings: Any) -> None:
    settings.SECURITY_THROTTLES = {"invite-send": (1, 3600)}
    _, powered = make_token(account, codes=["invoices"], manages_users=True)
    first = {"email": "one@example.org", "permissions": ["invoices"]}
    assert call(powered, "POST", "/api/v1/invitations", first).status_code == 201
    before = _snapshot()
    second = {"email": "two@example.org", "permissions": ["invoices"]}
    response = call(powered, "POST", "/api/v1/invitations", second)
    assert_problem(response, 429, "rate_limited")
    assert int(response["Retry-After"]) > 0
    invitation = Invitation.objects.get()
    assert_problem(call(powered, "POST", f"/api/v1/invitations/{invitation.pk}/resend"), 429)
    assert _snapshot() == before


def test_a_sub_accounts_token_cannot_move_an_address_receiving_what_it_cannot_read(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    contact = ContactFactory(account=account, email_kinds=["general", "invoice"])
    member = member_factory("contacts")
    _, secret = make_token(account, member.user, codes=["contacts"])
    before = _snapshot()
    body = {"email": "elsewhere@example.org"}
    problem = assert_problem(call(secret, "PATCH", f"/api/v1/contacts/{contact.pk}", body), 400)
    assert "only the account owner can change their address" in problem["detail"]
    # Unticking the owner's kind is not theirs either: it stays.
    response = call(secret, "PATCH", f"/api/v1/contacts/{contact.pk}", {"email_kinds": ["general"]})
    assert response.status_code == 200
    assert response.json()["email_kinds"] == ["general", "invoice"]
    before["contacts"] = list(Contact.objects.order_by("pk").values())
    assert _snapshot() == before


def test_a_users_power_token_gives_no_more_than_it_carries(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    """The Users power is not a way round the token's own grant: a token carrying only
    contacts, limited to one service, may not invite (or widen) a person with more
    permissions or a wider scope than that. Found by an attacker-side review: it could
    invite an address of its own with All Permissions on everything."""
    mine = ServiceFactory(account=account)
    other = ServiceFactory(account=account)
    member = member_factory("contacts")
    _, narrow = make_token(
        account,
        codes=["contacts"],
        manages_users=True,
        scope={"service": [mine.pk], "domain": []},
    )
    before = _snapshot()
    for body in (
        {"email": "attacker@evil.example", "permissions": ALL, "scope": None},
        {"email": "attacker@evil.example", "permissions": ["contacts"], "scope": None},
        {
            "email": "attacker@evil.example",
            "permissions": ["contacts"],
            "scope": {"service": [mine.pk, other.pk], "domain": []},
        },
    ):
        problem = assert_problem(call(narrow, "POST", "/api/v1/invitations", body), 403)
        assert "token" in problem["detail"]
    for body in (
        {"permissions": ALL, "scope": {"service": [mine.pk], "domain": []}},
        {"permissions": ["contacts"], "scope": None},
    ):
        assert_problem(call(narrow, "PATCH", f"/api/v1/users/{member.pk}", body), 403)
    assert _snapshot() == before
    member.refresh_from_db()
    assert member.permissions == ["contacts"] and member.scope is None
    # Within what it carries, it may.
    within = {
        "email": "helper@example.org",
        "permissions": ["contacts"],
        "scope": {"service": [mine.pk], "domain": []},
    }
    assert call(narrow, "POST", "/api/v1/invitations", within).status_code == 201


def test_a_users_power_token_resends_no_invitation_beyond_what_it_carries(
    account: Account,
) -> None:
    """Resending gives the grant again (a new link): the owner's invitation with All
    Permissions is not a narrow token's to send."""
    invitation = InvitationFactory(account=account, permissions=ALL)
    _, narrow = make_token(account, codes=["contacts"], manages_users=True)
    before = _snapshot()
    assert_problem(call(narrow, "POST", f"/api/v1/invitations/{invitation.pk}/resend"), 403)
    assert _snapshot() == before
    _, whole = make_token(account, codes=ALL, manages_users=True)
    assert call(whole, "POST", f"/api/v1/invitations/{invitation.pk}/resend").status_code == 200
