"""A stateful property test of the access model.

Hypothesis runs random sequences of invite / accept (by the invitee, or tried by someone
else) / change permissions (by the owner, or tried by a member) / revoke / expire /
cancel / switch account / request a page, over two accounts and five people (both
owners, two people with a login, one who gets a login by accepting). The real services
and real HTTP requests (CSRF enforced) do the work; a plain model keeps what each owner
granted. After every step the invariants check that:

* ``access_for`` gives every person on every account exactly what the model says;
* the stored memberships are the model's (normalised codes, status) and nothing else;
* pages answer accordingly: 200 when allowed, 403 when refused, "access removed" when
  the access ended (probed for whoever the step changed, on a rotating sample of pages);
* every account still has its one owner, and no owner holds a membership of it;
* nobody receives or reads an email outside their grant: every email the step queued
  goes only to people whose access covers its kind, the owner, confirmed contacts opted
  in to it, or the one person a personal email is about; the worker sends nothing to
  access that ended since; Email History opens exactly the emails the grant covers.

Contacts are added (by the owner or a sub-account, with kinds inside or outside the
actor's grant) and confirmed from their link; staff issue invoices and answer tickets.

Ownership moves too: the owner offers the account to anyone (who then accepts from the
link, or the owner cancels it, or it expires), and accounts are closed (refused while an
invoice is unpaid). The model's owner of each account (``owner_of``) changes with it; after
every step each account has exactly its one owner, and a former owner who left reaches
nothing of it, old session included.

API tokens too: anyone with access makes tokens for an account (carrying a random subset
of their own permissions, or trying more; limited to items within their scope, or trying
another account's), revokes them (their creator, the owner, or someone else trying), they
expire, and scripts use them (one API endpoint per permission, and an item's endpoint).
After every step each token is authenticated as a script would be: it carries exactly its
permissions ∩ its creator's current grant, its scope ∩ its creator's scope, and lists
exactly those items; nothing at all (401) once it was revoked or expired, its creator's
access ended (recorded: revoked, or expired and swept by the worker) or is not usable now,
ownership moved away from its creator, or the account closed.

Each example runs in a savepoint that is rolled back, so every example starts from a
fresh world.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import resolve, reverse
from django.utils import timezone
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from acceptance.actors import browser, outcome, post, work_in
from acceptance.objects import OBJECT_KWARGS
from clientarea.access_table import ROUTES, Route
from clientarea.accounts import permissions
from clientarea.accounts.models import Account, Invitation, Membership, OwnershipTransfer, User
from clientarea.accounts.ownership import (
    OwnershipError,
    account_close_confirm,
    account_close_request,
    ownership_transfer_accept,
    ownership_transfer_cancel,
    ownership_transfer_expire_due,
    ownership_transfer_start,
)
from clientarea.accounts.policy import OutOfReach, access_for
from clientarea.accounts.services import (
    AccessError,
    ContactError,
    InvitationError,
    contact_confirm,
    contact_create,
    invitation_accept,
    invitation_cancel,
    invitation_create,
    membership_expire_due,
    membership_revoke,
    membership_update,
)
from clientarea.accounts.tests.factories import AccountFactory, UserFactory
from clientarea.accounts.tests.helpers import invitation_token_from_outbox, open_invitation
from clientarea.api.models import ApiToken
from clientarea.api.services import (
    TokenError,
    TokenRefused,
    token_authenticate,
    token_create,
    token_revoke,
)
from clientarea.billing.tests.factories import make_invoice
from clientarea.domains.models import Domain
from clientarea.domains.selectors import domain_list_for
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.models import Service
from clientarea.hosting.selectors import service_list_for
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import outbox_deliver_due
from clientarea.support.services import ticket_open, ticket_reply_staff
from clientarea.support.tests.factories import DepartmentFactory

pytestmark = pytest.mark.django_db

ACCOUNTS = ("A", "B")
PEOPLE = ("owner_a", "owner_b", "ann", "bob", "newbie")
OWNER_OF = {"A": "owner_a", "B": "owner_b"}
EMAIL = {p: f"{p}@example.com" for p in PEOPLE}
CODES = sorted(permissions.ALL_CODES)
PASSWORD = "a brand new passphrase, 42"
OWNER = "owner"

# Pages a GET may ask for: every route of the table that needs no object and no signed
# link, plus one object page per "manage" permission (made for each account).
PAGES: tuple[Route, ...] = tuple(
    r
    for r in ROUTES
    if "GET" in r.methods
    and r.rule != "public"
    and not r.is_api  # a session never authenticates the API (its tests use tokens)
    and (r.object_param is None or r.name in ("hosting:password_change", "domains:nameservers"))
)
# A page per permission, for the probes.
PERMISSION_PAGE = {
    "profile": "accounts:account_profile",
    "contacts": "accounts:contacts",
    "products": "hosting:list",
    "manageproducts": "hosting:password_change",
    "domains": "domains:list",
    "managedomains": "domains:nameservers",
    "invoices": "billing:invoice_list",
    "tickets": "support:ticket_list",
    "emails": "notifications:history",
}
assert set(PERMISSION_PAGE) == permissions.ALL_CODES
PROBE_ROTATION = ["core:dashboard", "accounts:users", *PERMISSION_PAGE.values()]

# One to four codes; one time in ten none (refused: at least one is required).
granted_st = st.sets(st.sampled_from(CODES), min_size=1, max_size=4)
codes_st = st.tuples(st.integers(0, 9), granted_st).map(lambda t: t[1] if t[0] else set())
accounts_st = st.sampled_from(ACCOUNTS)
people_st = st.sampled_from(PEOPLE)
ACCOUNT_KINDS = ("general", "invoice", "support", "product", "domain")
KIND_PERMISSION = {"invoice": "invoices", "support": "tickets", "product": "products",
                   "domain": "domains"}  # fmt: skip
kinds_st = st.sets(st.sampled_from(ACCOUNT_KINDS), min_size=1, max_size=3)


# --- API tokens ------------------------------------------------------------------------------
def _probe_rank(route: Route) -> tuple[int, str]:
    if "GET" in route.methods:
        return (0 if route.object_param is None else 1, route.name)
    return (2 + ("PUT", "PATCH", "POST").index(route.methods[0]), route.name)


def _item_kind(route: Route) -> str | None:
    return next((k for k in ("service", "domain") if f"api:{k}" in route.name), None)


# One API endpoint per permission a token may carry, for the probes: a GET of a list
# where there is one, else a change (of a service or domain) sent with an empty body,
# which the view refuses as bad input (400) once the policy let it through: nothing
# changes. Generated from the route table, so endpoints join as they land.
API_PROBES: dict[str, Route] = {}
for _route in sorted(
    (r for r in ROUTES if r.is_api and r.rule.startswith("token:") and r.rule != "token:owner"),
    key=_probe_rank,
):
    if _route.object_param is None or _item_kind(_route) is not None:
        API_PROBES.setdefault(_route.rule.removeprefix("token:"), _route)
assert {"invoices", "products", "domains"} <= set(API_PROBES), API_PROBES
ITEM_DETAIL = {"service": ("api:service_detail", "products"),
               "domain": ("api:domain_detail", "domains")}  # fmt: skip
ScopeModel = dict[str, frozenset[int]] | None


def scope_norm(scope: Any) -> ScopeModel:
    if scope is None:
        return None
    return {kind: frozenset(scope.get(kind, ())) for kind in ("service", "domain")}


def scope_and(first: ScopeModel, second: ScopeModel) -> ScopeModel:
    if first is None or second is None:
        return scope_norm(second if first is None else first)
    return {
        k: first.get(k, frozenset()) & second.get(k, frozenset()) for k in ("service", "domain")
    }


@dataclass
class TokenModel:
    key: str  # the account
    creator: str
    codes: frozenset[str]  # what it carries (with what that implies)
    scope: ScopeModel  # as stored: its own, or its scoped creator's at the time
    as_owner: bool
    secret: str
    ended: bool = False  # revoked, expired, or voided with its creator's footing: for good


class AccessMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        # Who owns each account, per the model: transfers change it.
        self.owner_of: dict[str, str] = dict(OWNER_OF)
        # Pending transfer offers (account -> recipient, link token, former owner stays),
        # recipients revoked since their offer, former owners who left, closed accounts
        # (and those whose closing was asked for), and accounts with an invoice (unpaid:
        # closing is refused).
        self.transfers: dict[str, tuple[str, str, bool]] = {}
        self.revoked_since_offer: set[tuple[str, str]] = set()
        self.left: set[tuple[str, str]] = set()
        self.closed: set[str] = set()
        self.requested: set[str] = set()
        self.invoiced: set[str] = set()
        # A fresh world per example: everything below is rolled back in teardown().
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.users: dict[str, User | None] = {p: None for p in PEOPLE}
        for person in ("owner_a", "owner_b", "ann", "bob"):
            user: User = UserFactory(email=EMAIL[person], first_name=person.title())
            self.users[person] = user
        self.accounts: dict[str, Account] = {}
        for key in ACCOUNTS:
            account: Account = AccountFactory(
                owner=self.users[self.owner_of[key]], company_name=f"Account {key}"
            )
            self.accounts[key] = account
        self.urls: dict[tuple[str, str], str] = {}
        for key, account in self.accounts.items():
            for route in PAGES:
                kwargs = OBJECT_KWARGS[route.name](account) if route.object_param else None
                self.urls[key, route.name] = reverse(route.name, kwargs=kwargs)
        self.scope_init()
        # The model: what each owner granted ((person, account) -> codes and status),
        # the pending invitations ((account, person) -> link token and codes), and the
        # account each person's browser session works in.
        self.grants: dict[tuple[str, str], tuple[frozenset[str], str]] = {}
        self.pending: dict[tuple[str, str], tuple[str, frozenset[str]]] = {}
        self.sessions: dict[str, Client] = {}
        self.current: dict[str, str | None] = {}
        self.probes: dict[str, Client] = {}
        self.touched: set[tuple[str, str]] = set()
        self.rotation = itertools.count()
        # Contacts: (account, address) -> (kinds, confirmed); tickets to answer.
        self.contacts: dict[tuple[str, str], tuple[frozenset[str], bool]] = {}
        self.contact_number = itertools.count()
        self.tickets: list[tuple[str, int]] = []
        self.staff: User = UserFactory(email="staff@example.net", is_staff=True)
        self.emails_seen = (
            OutboxEmail.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        )
        # API tokens by id; memberships past their expiry the worker has not recorded yet
        # (recording one voids its person's tokens); what each token's last probe expected.
        self.api_tokens: dict[int, TokenModel] = {}
        self.unswept: set[tuple[str, str]] = set()
        self.token_probed: dict[int, Any] = {}
        self.token_rotation = itertools.count()
        self.api = Client()

    def scope_init(self) -> None:
        """Resource scopes are the ScopedAccessMachine's: here nobody has one."""
        self.scopes: dict[tuple[str, str], dict[str, frozenset[int]] | None] = {}
        self.page_items: dict[tuple[str, str], tuple[str, int]] = {}

    def scope_hides(self, person: str, key: str | None, route_name: str) -> bool:
        return False

    def creator_scope(self, person: str, key: str) -> ScopeModel:
        """The person's resource scope on the account (None: every item)."""
        return None

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- the model ----------------------------------------------------------------------

    def expected_access(self, person: str, key: str) -> str | frozenset[str] | None:
        """OWNER, the granted codes (with what they imply), or None for no access."""
        if key in self.closed:
            return None  # nobody can select a closed account, its owner included
        if self.owner_of[key] == person:
            return OWNER
        codes, status = self.grants.get((person, key), (frozenset(), "none"))
        return codes if status == "active" else None

    def accessible(self, person: str) -> list[str]:
        return [k for k in ACCOUNTS if self.expected_access(person, k) is not None]

    def allowed(self, access: str | frozenset[str], route: Route) -> bool:
        if access == OWNER or route.rule == "account":
            return True
        if route.rule == "owner":
            return False
        assert route.permission is not None and isinstance(access, frozenset)
        return route.permission in access

    def middleware(self, person: str) -> tuple[str | None, bool]:
        """What the access middleware makes of the person's session before any view:
        the account it works in (or None) and whether access was just lost."""
        current = self.current.get(person)
        if current is not None:
            if self.expected_access(person, current) is not None:
                return current, False
            self.current[person] = None  # dropped from the session: "access removed"
            return None, True
        only = self.accessible(person)
        if len(only) == 1:  # the only account is selected by itself
            self.current[person] = only[0]
            return only[0], False
        return None, False

    def session(self, person: str) -> Client:
        """The person's one browser session, kept across steps (and revocations)."""
        if person not in self.sessions:
            user = self.users[person]
            assert user is not None
            self.sessions[person] = browser(user)
            self.current[person] = None
        return self.sessions[person]

    def membership(self, person: str, key: str) -> Membership:
        return Membership.objects.get(account=self.accounts[key], user=self.users[person])

    def owner(self, key: str) -> User:
        owner = self.users[self.owner_of[key]]
        assert owner is not None
        return owner

    # --- rules --------------------------------------------------------------------------

    @initialize(
        members=st.lists(
            st.tuples(
                st.sampled_from(["ann", "bob", "owner_b"]),
                accounts_st,
                granted_st,
                st.sampled_from(["active", "active", "revoked", "expired"]),
            ),
            max_size=3,
            unique_by=lambda t: t[:2],
        ),
        tokens=st.lists(
            st.tuples(
                st.sampled_from(["owner", "member"]),
                accounts_st,
                st.sampled_from(["none", "subset"]),
            ),
            min_size=1,
            max_size=3,
        ),
        data=st.data(),
    )
    def some_members(
        self,
        members: list[tuple[str, str, set[str], str]],
        tokens: list[tuple[str, str, str]],
        data: st.DataObject,
    ) -> None:
        """Start with a few sub-accounts, invited and accepted through the services;
        some of them since revoked or expired; and a few API tokens of whoever has access."""
        for person, key, codes, status in members:
            if self.owner_of[key] == person:
                continue
            invitation_create(
                account=self.accounts[key],
                actor=self.owner(key),
                email=EMAIL[person],
                permission_codes=sorted(codes),
            )
            token = invitation_token_from_outbox(EMAIL[person])
            user = self.users[person]
            assert user is not None
            membership = invitation_accept(token=token, user=user)
            if status == "revoked":
                membership_revoke(membership=membership, actor=self.owner(key))
            elif status == "expired":
                membership.expires_at = timezone.now() - timedelta(days=1)
                membership.save(update_fields=["expires_at"])
            self.grants[person, key] = (permissions.expand(codes), status)
            if status == "expired":
                self.unswept.add((person, key))
        for who, key, scope_mode in tokens:
            person = self.token_creator(data, key, who)
            self.token_make(data, person, key, beyond=False, scope_mode=scope_mode)

    def ended(self) -> list[tuple[str, str]]:
        return sorted(pair for pair, (_, status) in self.grants.items() if status != "active")

    @rule(key=accounts_st, person=people_st, codes=codes_st)
    def invite(self, key: str, person: str, codes: set[str]) -> None:
        """The owner invites anyone (themselves, a member, someone new): refused when
        they have access already, or a pending invitation, or no permission is chosen."""
        usable = self.expected_access(person, key) not in (None, OWNER)
        should = (
            bool(codes)
            and self.owner_of[key] != person
            and not usable
            and (key, person) not in self.pending
            and key not in self.requested  # closing asked for (or done): nobody new
        )
        try:
            invitation_create(
                account=self.accounts[key],
                actor=self.owner(key),
                email=EMAIL[person],
                permission_codes=sorted(codes),
            )
        except (InvitationError, AccessError):
            assert not should, f"the invitation of {person} to {key} was refused"
            return
        assert should, f"{person} was invited to {key}"
        token = invitation_token_from_outbox(EMAIL[person])
        self.pending[key, person] = (token, permissions.expand(codes))

    @precondition(lambda self: self.ended())
    @rule(data=st.data(), codes=codes_st)
    def invite_again(self, data: st.DataObject, codes: set[str]) -> None:
        """The owner invites back someone whose access was revoked or expired: accepting
        restores exactly the new invitation's permissions, nothing of the old ones."""
        person, key = data.draw(st.sampled_from(self.ended()), label="membership")
        self.invite(key, person, codes)

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def accept(self, data: st.DataObject) -> None:
        """The invitee opens the link and accepts, posting forged permission and account
        fields too: they get what the invitation says, on its account."""
        key, person = data.draw(st.sampled_from(sorted(self.pending)), label="invitation")
        token, codes = self.pending[key, person]
        other = next(k for k in ACCOUNTS if k != key)
        forged = {
            "access": "all",
            "permissions": [*CODES, "manage_users"],
            "is_owner": "on",
            "account": self.accounts[other].pk,
            "status": "active",
        }
        if key in self.requested:
            # Closing was asked for after the invitation went out: nobody new joins.
            client = self.session(person) if self.users[person] is not None else browser()
            fields = {**forged, "first_name": "Newbie", "password1": PASSWORD}
            post(client, open_invitation(client, token), {**fields, "password2": PASSWORD})
            # (An access past its expiry keeps status "active" until the worker runs:
            # what counts is whether it is usable.)
            assert (
                not Membership.objects.usable()
                .filter(account=self.accounts[key], user__email=EMAIL[person])
                .exists()
                or self.expected_access(person, key) is not None
            )
            if self.users[person] is None:
                assert not User.objects.filter(email=EMAIL[person]).exists()
            return
        if self.users[person] is None:  # no login yet: name and password, then joined
            client = browser()
            url = open_invitation(client, token)
            fields = {**forged, "first_name": "Newbie", "password1": PASSWORD}
            response = post(client, url, {**fields, "password2": PASSWORD})
            assert outcome(response) == "ok" and response.status_code == 302
            self.users[person] = User.objects.get(email=EMAIL[person])
            self.sessions[person] = client
        else:
            client = self.session(person)
            self.middleware(person)
            response = post(client, open_invitation(client, token), forged)
            assert response.status_code == 302
            if self.expected_access(person, key) is not None:
                # Access restored meanwhile (the owner extended it): the link is refused
                # and stays pending; the session stays where it was.
                still = Invitation.objects.filter(
                    account=self.accounts[key], email=EMAIL[person], status="pending"
                )
                assert still.exists()
                return
        del self.pending[key, person]
        self.grants[person, key] = (codes, "active")
        self.unswept.discard((person, key))
        self.scopes.pop((person, key), None)  # the invitation's: every service and domain
        self.current[person] = key
        self.touched.add((person, key))

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), intruder=people_st)
    def accept_as_someone_else(self, data: st.DataObject, intruder: str) -> None:
        """Someone logged in with another address opens the link: refused, unchanged."""
        key, person = data.draw(st.sampled_from(sorted(self.pending)), label="invitation")
        if intruder == person or not self.users[intruder]:
            return
        token, _ = self.pending[key, person]
        client = self.session(intruder)
        self.middleware(intruder)
        response = post(client, open_invitation(client, token), {})
        assert response.status_code == 403

    @precondition(lambda self: self.grants)
    @rule(data=st.data(), codes=codes_st, until=st.sampled_from([None, 1, 30]))
    def change_permissions(self, data: st.DataObject, codes: set[str], until: int | None) -> None:
        """The owner edits what a sub-account may do (and until when)."""
        person, key = data.draw(st.sampled_from(sorted(self.grants)), label="membership")
        _, status = self.grants[person, key]
        should = bool(codes) and status != "revoked" and key not in self.closed
        expires_at = timezone.now() + timedelta(days=until) if until else None
        try:
            membership_update(
                membership=self.membership(person, key),
                actor=self.owner(key),
                permission_codes=sorted(codes),
                expires_at=expires_at,
            )
        except (AccessError, InvitationError):
            assert not should, f"changing {person}'s permissions on {key} was refused"
            return
        assert should, f"{person}'s permissions on {key} were changed"
        if (person, key) in self.unswept:
            self.tokens_end(person, key)  # it had lapsed: ended first, then restored
        self.grants[person, key] = (permissions.expand(codes), "active")
        self.unswept.discard((person, key))
        self.tokens_narrow(person, key)
        self.touched.add((person, key))

    @precondition(lambda self: self.grants)
    @rule(data=st.data(), member=people_st, codes=codes_st)
    def change_permissions_as_a_member(
        self, data: st.DataObject, member: str, codes: set[str]
    ) -> None:
        """Anyone but the owner (a sub-account of this account, even of the membership
        itself, or another account's owner) tries the same: always refused."""
        person, key = data.draw(st.sampled_from(sorted(self.grants)), label="membership")
        actor = self.users[member]
        if actor is None or self.owner_of[key] == member:
            return
        with pytest.raises(AccessError):
            membership_update(
                membership=self.membership(person, key),
                actor=actor,
                permission_codes=sorted(codes) or CODES,
                expires_at=None,
            )

    @precondition(lambda self: self.grants)
    @rule(data=st.data())
    def revoke(self, data: st.DataObject) -> None:
        """Revoke Access (again, if it was already revoked: nothing changes)."""
        person, key = data.draw(st.sampled_from(sorted(self.grants)), label="membership")
        if key in self.closed:
            return  # its access already ended; the owner has no powers left there
        membership_revoke(membership=self.membership(person, key), actor=self.owner(key))
        codes, before = self.grants[person, key]
        if before != "revoked" and self.transfers.get(key, ("",))[0] == person:
            self.revoked_since_offer.add((person, key))  # a later decision than the offer
        self.grants[person, key] = (codes, "revoked")
        self.unswept.discard((person, key))
        self.tokens_end(person, key)  # the access_ended signal voids its tokens
        self.touched.add((person, key))

    @precondition(lambda self: self.grants)
    @rule(data=st.data(), sweep=st.booleans())
    def expire(self, data: st.DataObject, sweep: bool) -> None:
        """The access's end date passes (and perhaps the worker records it)."""
        person, key = data.draw(st.sampled_from(sorted(self.grants)), label="membership")
        Membership.objects.filter(pk=self.membership(person, key).pk).update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )
        codes, status = self.grants[person, key]
        if status == "active":
            self.grants[person, key] = (codes, "expired")
            self.unswept.add((person, key))
        if sweep:
            membership_expire_due()
            for pair in sorted(self.unswept):  # recorded: their tokens are voided
                self.tokens_end(*pair)
            self.unswept.clear()
        self.touched.add((person, key))

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        key, person = data.draw(st.sampled_from(sorted(self.pending)), label="invitation")
        invitation = Invitation.objects.get(
            account=self.accounts[key], email=EMAIL[person], status=Invitation.Status.PENDING
        )
        invitation_cancel(invitation=invitation, actor=self.owner(key))
        del self.pending[key, person]

    @rule(person=people_st, key=accounts_st)
    def switch_account(self, person: str, key: str) -> None:
        if self.users[person] is None:
            return
        client = self.session(person)
        self.middleware(person)
        response = post(
            client, reverse("accounts:select_account"), {"account": self.accounts[key].pk}
        )
        if self.expected_access(person, key) is not None:
            assert response.status_code == 302, f"{person} switched to {key}"
            self.current[person] = key
        else:
            assert response.status_code == 404, f"{person} cannot switch to {key}"

    @rule(person=people_st, route=st.sampled_from(PAGES), ids_of=accounts_st)
    def request(self, person: str, route: Route, ids_of: str) -> None:
        """A GET in the person's own session. Object pages are asked with the ids of
        the session's account, or with the other account's ids (then: 404, unless the
        person may open that page there: then the session switches to it)."""
        if self.users[person] is None:
            return
        client = self.session(person)
        current, lost = self.middleware(person)
        key = ids_of if route.object_param else (current or "A")
        got = outcome(client.get(self.urls[key, route.name]))
        # A link to an object of another account opens it there (switching) when the
        # person's access there allows the page and reaches the object.
        there = self.expected_access(person, key) if route.object_param else None
        follows = (
            there is not None
            and key != current
            and self.allowed(there, route)
            and not self.scope_hides(person, key, route.name)
        )
        if route.rule == "login":
            want = "ok"
        elif current is None and lost:
            want = "access_removed"
        elif follows:
            want = "ok"
            self.current[person] = key
        elif current is None:
            want = "select_account"
        elif not self.allowed(self.expected_access(person, current) or frozenset(), route):
            want = "forbidden"
        elif (route.object_param and key != current) or self.scope_hides(
            person, current, route.name
        ):
            want = "not_found"
        else:
            want = "ok"
        assert got == want, f"{person} GET {route.name} of {key} (in {current}): {got}"

    def readable_kinds(self, person: str, key: str) -> frozenset[str]:
        """The kinds of `key`'s email the person may receive and read, per the model."""
        access = self.expected_access(person, key)
        if access is None:
            return frozenset()
        if access == OWNER:
            return frozenset({*ACCOUNT_KINDS, "security"})
        assert isinstance(access, frozenset)
        return frozenset(k for k in ACCOUNT_KINDS if k == "general" or KIND_PERMISSION[k] in access)

    @rule(key=accounts_st, actor=people_st, kinds=kinds_st)
    def add_contact(self, key: str, actor: str, kinds: set[str]) -> None:
        """The owner or anyone else adds a contact: allowed with View & Manage Contacts and
        only with kinds the actor reads; a refused attempt changes nothing."""
        user = self.users[actor]
        if user is None:
            return
        access = self.expected_access(actor, key)
        may_manage = access == OWNER or (isinstance(access, frozenset) and "contacts" in access)
        should = may_manage and kinds <= self.readable_kinds(actor, key)
        address = f"contact{next(self.contact_number)}@contacts.example"
        before = OutboxEmail.objects.count()
        try:
            contact_create(
                account=self.accounts[key],
                actor=user,
                data={"name": "Contact", "email": address, "email_kinds": sorted(kinds)},
            )
        except (AccessError, ContactError):
            assert not should, f"{actor} was refused a contact with {kinds} on {key}"
            assert OutboxEmail.objects.count() == before
            return
        assert should, f"{actor} added a contact with {kinds} on {key}"
        self.contacts[key, address] = (frozenset(kinds), False)

    @precondition(lambda self: any(not c for _, c in self.contacts.values()))
    @rule(data=st.data())
    def confirm_contact(self, data: st.DataObject) -> None:
        """The contact's holder confirms from the link they were sent."""
        pending = sorted(k for k, (_, confirmed) in self.contacts.items() if not confirmed)
        key, address = data.draw(st.sampled_from(pending), label="contact")
        row = OutboxEmail.objects.filter(to_email=address).latest("pk")
        text = row.body_text if "/contacts/confirm/" in row.body_text else ""
        if not text:
            return  # already sent and redacted: the link lives only in the holder's inbox
        token = text.split("/contacts/confirm/", 1)[1].split("/", 1)[0]
        contact_confirm(token=token)
        kinds, _ = self.contacts[key, address]
        self.contacts[key, address] = (kinds, True)

    @rule(key=accounts_st)
    def staff_issue_invoice(self, key: str) -> None:
        make_invoice(self.accounts[key], actor=self.staff)
        self.invoiced.add(key)

    @rule(key=accounts_st, person=people_st)
    def open_ticket(self, key: str, person: str) -> None:
        """Someone who may open tickets does (the page refuses the others)."""
        user = self.users[person]
        access = self.expected_access(person, key)
        if user is None or not (
            access == OWNER or (isinstance(access, frozenset) and "tickets" in access)
        ):
            return
        ticket = ticket_open(
            access=access_for(user, self.accounts[key].pk),
            department=DepartmentFactory(name="Technical Support"),
            subject="Help",
            priority="medium",
            body="Please help.",
        )
        self.tickets.append((key, ticket.pk))

    @precondition(lambda self: self.tickets)
    @rule(data=st.data())
    def staff_reply(self, data: st.DataObject) -> None:
        """Staff answer a ticket, whatever happened to its opener's access since."""
        from clientarea.support.models import Ticket

        _, pk = data.draw(st.sampled_from(self.tickets), label="ticket")
        ticket_reply_staff(ticket=Ticket.objects.get(pk=pk), staff=self.staff, body="Answer.")

    # --- ownership transfer and closing ----------------------------------------------------

    def transfer_token(self, person: str) -> str:
        row = OutboxEmail.objects.filter(
            to_email=EMAIL[person], body_text__contains="/ownership/"
        ).latest("pk")
        return row.body_text.split("/ownership/", 1)[1].split("/", 1)[0]

    @rule(key=accounts_st, person=people_st, stays=st.booleans())
    def transfer_start(self, key: str, person: str, stays: bool) -> None:
        """The owner offers the account to anyone (a member, someone new, themselves):
        refused to themselves, while an offer is pending, or once the account is closed."""
        should = person != self.owner_of[key] and not (
            {key} & (set(self.transfers) | self.closed | self.requested)
        )
        try:
            ownership_transfer_start(
                account=self.accounts[key],
                actor=self.owner(key),
                to_email=EMAIL[person],
                former_owner_stays=stays,
                keep_payment_methods=False,
            )
        except (OwnershipError, AccessError):
            assert not should, f"the transfer of {key} to {person} was refused"
            return
        assert should, f"{key} was offered to {person}"
        self.transfers[key] = (person, self.transfer_token(person), stays)
        self.revoked_since_offer.discard((person, key))

    @rule(key=accounts_st, actor=people_st)
    def transfer_start_as_someone_else(self, key: str, actor: str) -> None:
        """Anyone but the owner (All Permissions included) tries: always refused."""
        user = self.users[actor]
        if user is None or actor == self.owner_of[key]:
            return
        with pytest.raises(AccessError):
            ownership_transfer_start(
                account=self.accounts[key],
                actor=user,
                to_email=EMAIL[actor],
                former_owner_stays=False,
                keep_payment_methods=True,
            )

    @precondition(lambda self: self.transfers)
    @rule(data=st.data())
    def transfer_accept(self, data: st.DataObject) -> None:
        """The recipient opens the link and accepts (posting forged fields too). Refused
        if the owner revoked them after the offer; otherwise they become the owner, the
        former owner stays with All Permissions or leaves."""
        key = data.draw(st.sampled_from(sorted(self.transfers)), label="transfer")
        person, token, stays = self.transfers[key]
        user = self.users[person]
        if user is None:
            return  # no login yet: the page asks them to create one (tested elsewhere)
        client = self.session(person)
        self.middleware(person)
        client.get(reverse("accounts:ownership_transfer_link", args=[token]))
        forged = {"owner": self.owner(key).pk, "former_owner_stays": "on", "account": 0}
        response = post(client, reverse("accounts:ownership_transfer_page"), forged)
        assert response.status_code == 302
        owner_id = Account.objects.values_list("owner_id", flat=True).get(pk=self.accounts[key].pk)
        _, status = self.grants.get((person, key), (frozenset(), "none"))
        if status == "revoked" and (person, key) in self.revoked_since_offer:
            assert owner_id == self.owner(key).pk, f"{person} took {key} after being revoked"
            return  # still pending: it may be cancelled or expire
        assert owner_id == user.pk, f"{person} did not become the owner of {key}"
        former = self.owner_of[key]
        self.owner_of[key] = person
        self.grants.pop((person, key), None)
        if stays:
            self.grants[former, key] = (permissions.expand(CODES), "active")
            # Every service and domain, whatever scope they had before they owned it.
            self.scopes.pop((former, key), None)
            self.left.discard((former, key))
        else:
            self.left.add((former, key))
        self.left.discard((person, key))
        self.tokens_end(former, key)  # ownership moved away from them: all their tokens
        self.unswept -= {(person, key), (former, key)}
        del self.transfers[key]
        self.accounts[key].refresh_from_db()
        self.current[person] = key
        self.touched |= {(person, key), (former, key)}

    @precondition(lambda self: self.transfers)
    @rule(data=st.data(), intruder=people_st)
    def transfer_accept_as_someone_else(self, data: st.DataObject, intruder: str) -> None:
        """Anyone else opening the link is refused, and nothing changes."""
        key = data.draw(st.sampled_from(sorted(self.transfers)), label="transfer")
        person, token, _ = self.transfers[key]
        user = self.users[intruder]
        if user is None or intruder == person:
            return
        with pytest.raises(OwnershipError):
            ownership_transfer_accept(token=token, user=user)

    @precondition(lambda self: self.transfers)
    @rule(data=st.data())
    def transfer_cancel(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.transfers)), label="transfer")
        person, token, _ = self.transfers[key]
        transfer = OwnershipTransfer.objects.get(account=self.accounts[key], status="pending")
        ownership_transfer_cancel(transfer=transfer, actor=self.owner(key))
        del self.transfers[key]
        user = self.users[person]
        if user is not None:  # the cancelled link admits nobody
            with pytest.raises(OwnershipError):
                ownership_transfer_accept(token=token, user=user)

    @precondition(lambda self: self.transfers)
    @rule(data=st.data(), sweep=st.booleans())
    def transfer_expire(self, data: st.DataObject, sweep: bool) -> None:
        """72 hours pass (and perhaps the worker records it): the link admits nobody."""
        key = data.draw(st.sampled_from(sorted(self.transfers)), label="transfer")
        person, token, _ = self.transfers.pop(key)
        OwnershipTransfer.objects.filter(account=self.accounts[key], status="pending").update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )
        if sweep:  # also records earlier offers that lapsed without a sweep
            assert ownership_transfer_expire_due() >= 1
            lapsed = OwnershipTransfer.objects.filter(
                status="pending", expires_at__lte=timezone.now()
            )
            assert not lapsed.exists()
        user = self.users[person]
        if user is not None:
            with pytest.raises(OwnershipError):
                ownership_transfer_accept(token=token, user=user)

    @rule(key=accounts_st)
    def close_request(self, key: str) -> None:
        """The owner asks to close the account: refused while an invoice is unpaid or an
        offer is pending (and no offer can start after it)."""
        should = not ({key} & (self.closed | self.requested | self.invoiced | set(self.transfers)))
        try:
            account_close_request(account=self.accounts[key], actor=self.owner(key))
        except (OwnershipError, AccessError):
            assert not should, f"asking to close {key} was refused"
            return
        assert should, f"closing {key} was asked for"
        self.requested.add(key)

    @precondition(lambda self: self.requested - self.closed)
    @rule(data=st.data())
    def close_confirm(self, data: st.DataObject) -> None:
        """Staff confirm (refused if an invoice was issued since): every access ends."""
        key = data.draw(st.sampled_from(sorted(self.requested - self.closed)), label="closing")
        try:
            account_close_confirm(account=self.accounts[key], staff=self.staff)
        except OwnershipError:
            assert key in self.invoiced, f"confirming the closing of {key} was refused"
            return
        assert key not in self.invoiced, f"{key} was closed with an unpaid invoice"
        self.closed.add(key)
        for token in self.api_tokens.values():
            token.ended |= token.key == key
        self.unswept = {pair for pair in self.unswept if pair[1] != key}
        for (person, k), (codes, status) in list(self.grants.items()):
            if k == key and status == "active":
                self.grants[person, k] = (codes, "revoked")
                self.touched.add((person, k))
        self.pending = {pair: v for pair, v in self.pending.items() if pair[0] != key}
        self.accounts[key].refresh_from_db()
        self.touched.add((self.owner_of[key], key))

    # --- API tokens ---------------------------------------------------------------------

    def token_items(self, key: str) -> dict[str, list[int]]:
        """The account's services and domains as they are now."""
        account = self.accounts[key]
        return {
            "service": sorted(Service.objects.filter(account=account).values_list("pk", flat=True)),
            "domain": sorted(Domain.objects.filter(account=account).values_list("pk", flat=True)),
        }

    def tokens_end(self, person: str, key: str) -> None:
        """Every token the person made for the account dies, for good."""
        for token in self.api_tokens.values():
            if token.creator == person and token.key == key:
                token.ended = True

    def tokens_narrow(self, person: str, key: str) -> None:
        """The person's grant was changed: each live token they made for the account keeps
        only what the new grant allows, for good (widening it later gives nothing back)."""
        granted, _ = self.grants[person, key]
        for token in self.api_tokens.values():
            if token.creator == person and token.key == key and not token.ended:
                token.codes = token.codes & granted
                token.scope = scope_and(token.scope, self.creator_scope(person, key))

    def token_reach(self, token: TokenModel) -> tuple[frozenset[str], ScopeModel] | None:
        """What the token reaches now: its permissions ∩ its creator's current grant and
        its scope ∩ its creator's scope; None when it does not authenticate."""
        access = self.expected_access(token.creator, token.key)
        if token.ended or access is None or (token.as_owner and access != OWNER):
            return None
        granted = permissions.ALL_CODES if access == OWNER else access
        assert isinstance(granted, frozenset)
        creator_scope = None if access == OWNER else self.creator_scope(token.creator, token.key)
        return token.codes & granted, scope_and(token.scope, creator_scope)

    def token_make(
        self, data: st.DataObject, person: str, key: str, *, beyond: bool, scope_mode: str
    ) -> None:
        """`person` makes a token for `key`: refused (nothing stored) without access, with
        a permission they do not hold, or a scope naming an item they do not reach."""
        user = self.users[person]
        if user is None:
            return
        access = self.expected_access(person, key)
        granted = permissions.ALL_CODES if access == OWNER else (access or frozenset())
        assert isinstance(granted, frozenset)
        pool = sorted(granted) if granted and not beyond else CODES
        codes = data.draw(st.sets(st.sampled_from(pool), min_size=1, max_size=4), label="codes")
        limit = self.creator_scope(person, key) if access not in (None, OWNER) else None
        scope: dict[str, set[int]] | None = None
        forged = False
        if scope_mode != "none":
            within = limit or {k: frozenset(v) for k, v in self.token_items(key).items()}
            scope = {
                kind: set(data.draw(st.sets(st.sampled_from(sorted(ids))), label=kind))
                if ids
                else set()
                for kind, ids in within.items()
            }
            if scope_mode == "forged":  # an item of the other account (or out of theirs)
                other = next(k for k in ACCOUNTS if k != key)
                outside = set(self.token_items(other)["service"])
                if limit is not None:
                    outside |= set(self.token_items(key)["service"]) - limit["service"]
                if outside:
                    scope["service"].add(min(outside))
                    forged = True
        should = access is not None and permissions.expand(codes) <= granted and not forged
        before = ApiToken.objects.count()
        try:
            token, secret = token_create(
                account=self.accounts[key],
                actor=user,
                name="Script",
                permission_codes=sorted(codes),
                expires_at=timezone.now() + timedelta(days=30),
                scope=scope,
            )
        except TokenError:
            assert not should, f"{person}'s token for {key} with {codes} {scope} was refused"
            assert ApiToken.objects.count() == before
            return
        assert should, f"{person} made a token for {key} with {codes} {scope}"
        stored = scope_norm(scope) if scope is not None else limit
        self.api_tokens[token.pk] = TokenModel(
            key, person, permissions.expand(codes), stored, access == OWNER, secret
        )

    def token_creator(self, data: st.DataObject, key: str, who: str) -> str:
        """The owner, a sub-account with access (the owner if there is none), or anyone."""
        if who == "member":
            holders = sorted(
                p for (p, k), (_, status) in self.grants.items() if k == key and status == "active"
            )
            if holders:
                return data.draw(st.sampled_from(holders), label="creator")
        if who == "anyone":
            return data.draw(people_st, label="creator")
        return self.owner_of[key]

    @rule(
        data=st.data(),
        key=accounts_st,
        who=st.sampled_from(["owner", "member", "member", "anyone"]),
        beyond=st.integers(0, 5).map(lambda n: n == 0),
        scope_mode=st.sampled_from(["none", "none", "subset", "subset", "forged"]),
    )
    def create_token(
        self, data: st.DataObject, key: str, who: str, beyond: bool, scope_mode: str
    ) -> None:
        person = self.token_creator(data, key, who)
        self.token_make(data, person, key, beyond=beyond, scope_mode=scope_mode)

    @precondition(lambda self: self.api_tokens)
    @rule(data=st.data(), by=st.sampled_from(["creator", "owner", "someone"]))
    def revoke_token(self, data: st.DataObject, by: str) -> None:
        """Its creator (while they have access) or the owner revokes it; anyone else gets
        the 404 of a token they cannot see, and it keeps working."""
        pk = data.draw(st.sampled_from(sorted(self.api_tokens)), label="token")
        token = self.api_tokens[pk]
        person = {"creator": token.creator, "owner": self.owner_of[token.key]}.get(by)
        person = person or data.draw(people_st, label="someone")
        user = self.users[person]
        if user is None:
            return
        may = (person == self.owner_of[token.key] and token.key not in self.closed) or (
            person == token.creator and self.expected_access(person, token.key) is not None
        )
        try:
            token_revoke(token=ApiToken.objects.get(pk=pk), actor=user)
        except OutOfReach:
            assert not may, f"{person} could not revoke {token.creator}'s token"
            return
        assert may, f"{person} revoked {token.creator}'s token on {token.key}"
        token.ended = True

    @precondition(lambda self: self.api_tokens)
    @rule(data=st.data())
    def expire_token(self, data: st.DataObject) -> None:
        pk = data.draw(st.sampled_from(sorted(self.api_tokens)), label="token")
        ApiToken.objects.filter(pk=pk).update(expires_at=timezone.now() - timedelta(minutes=1))
        self.api_tokens[pk].ended = True

    def token_call(self, pk: int, route_name: str, method: str, kwargs: Any = None) -> Any:
        url = reverse(route_name, kwargs=kwargs)
        secret = self.api_tokens[pk].secret
        return self.api.generic(
            method, url, "", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
        )

    def token_probe(self, pk: int, perm: str) -> None:
        """The token calls the API endpoint of `perm`: 401 dead, 403 not carried (or its
        creator no longer holds it), 404 out of reach, else reached (2xx, or the 400 of the
        empty body)."""
        token = self.api_tokens[pk]
        route = API_PROBES[perm]
        kwargs = None
        item: tuple[str, int] | None = None
        kind = _item_kind(route) if route.object_param else None
        if kind is not None:
            pks = self.token_items(token.key)[kind]
            if not pks:
                return
            item = (kind, pks[0])
            kwargs = {route.object_param: pks[0]}
        method = "GET" if "GET" in route.methods else route.methods[0]
        status = self.token_call(pk, route.name, method, kwargs).status_code
        reach = self.token_reach(token)
        if reach is None:
            want = "401"
        elif perm not in reach[0]:
            want = "403"
        elif item is not None and reach[1] is not None and item[1] not in reach[1][item[0]]:
            want = "404"
        else:
            want = "reached"
        got = "reached" if 200 <= status < 300 or status == 400 else str(status)
        assert got == want, f"{token.creator}'s token on {token.key}: {route.name} {status}"

    @precondition(lambda self: self.api_tokens)
    @rule(
        data=st.data(),
        perm=st.sampled_from(sorted(API_PROBES)),
        kind=st.sampled_from(["service", "domain"]),
        ids_of=accounts_st,
    )
    def use_token(self, data: st.DataObject, perm: str, kind: str, ids_of: str) -> None:
        """A script uses a token: the endpoint of a permission, and one service's or
        domain's (of the token's account or the other's): 200 exactly when the token
        carries the kind's permission and its scope holds the item."""
        pk = data.draw(st.sampled_from(sorted(self.api_tokens)), label="token")
        self.token_probe(pk, perm)
        pks = self.token_items(ids_of)[kind]
        if not pks:
            return
        item = data.draw(st.sampled_from(pks), label="item")
        name, needs = ITEM_DETAIL[kind]
        token = self.api_tokens[pk]
        status = self.token_call(pk, name, "GET", {"pk": item}).status_code
        reach = self.token_reach(token)
        if reach is None:
            want = 401
        elif needs not in reach[0]:
            want = 403
        elif ids_of != token.key or (reach[1] is not None and item not in reach[1][kind]):
            want = 404
        else:
            want = 200
        assert status == want, f"{token.creator}'s token on {token.key}: {kind} {item} of {ids_of}"

    @invariant()
    def tokens_reach_carried_grant_and_scope(self) -> None:
        """Every token authenticates exactly as the model says: its permissions ∩ its
        creator's grant, its scope ∩ theirs; or not at all. A token whose expectation (or
        its account's items) changed since it was last looked at also lists exactly the
        items it reaches, and is used over HTTP once."""
        items: dict[str, dict[str, list[int]]] = {}
        for pk, token in sorted(self.api_tokens.items()):
            want = self.token_reach(token)
            try:
                found = token_authenticate(secret=token.secret, ip="127.0.0.1")
            except TokenRefused as refused:
                assert want is None, f"{token.creator}'s token on {token.key}: {refused.code}"
                state: Any = None
            else:
                assert want is not None, f"{token.creator}'s token on {token.key} still works"
                access = found.access
                assert access.account.pk == self.accounts[token.key].pk
                assert not access.is_owner
                assert access.permissions == want[0], f"{token.creator}'s token on {token.key}"
                assert scope_norm(access.scope) == want[1], f"{token.creator}'s token scope"
                if token.key not in items:
                    items[token.key] = self.token_items(token.key)
                state = (want[0], repr(sorted((want[1] or {}).items())), repr(items[token.key]))
            if self.token_probed.get(pk, "never") == state:
                continue
            self.token_probed[pk] = state
            if want is not None:
                scope = want[1]
                reach = {
                    k: {p for p in v if scope is None or p in scope[k]}
                    for k, v in items[token.key].items()
                }
                assert {s.pk for s in service_list_for(access=access)} == reach["service"]
                assert {d.pk for d in domain_list_for(access=access)} == reach["domain"]
            perms = sorted(API_PROBES)
            self.token_probe(pk, perms[next(self.token_rotation) % len(perms)])

    @invariant()
    def former_owners_who_left_reach_nothing(self) -> None:
        for person, key in self.left:
            user = self.users[person]
            assert user is not None
            if self.expected_access(person, key) is None:
                assert access_for(user, self.accounts[key].pk) is None, f"{person} on {key}"

    # --- invariants ---------------------------------------------------------------------

    @invariant()
    def access_is_what_the_owner_granted(self) -> None:
        for person, user in self.users.items():
            if user is None:
                continue
            for key, account in self.accounts.items():
                access = access_for(user, account.pk)
                want = self.expected_access(person, key)
                if want is None:
                    assert access is None, f"{person} still reaches {key}"
                elif want == OWNER:
                    assert access is not None and access.is_owner
                else:
                    assert access is not None, f"{person} lost {key}"
                    assert not access.is_owner
                    assert access.permissions == want, f"{person} on {key}"

    @invariant()
    def stored_memberships_are_the_model(self) -> None:
        stored = {
            (m.user.email, m.account.company_name): m
            for m in Membership.objects.select_related("user", "account")
        }
        model = {
            (EMAIL[person], f"Account {key}"): grant for (person, key), grant in self.grants.items()
        }
        assert set(stored) == set(model)
        for name, (codes, status) in model.items():
            m = stored[name]
            assert m.permissions == permissions.normalise(sorted(codes))
            if status == "revoked":
                assert m.status == Membership.Status.REVOKED
            else:
                assert m.is_usable() == (status == "active"), name

    @invariant()
    def every_account_keeps_its_one_owner(self) -> None:
        for key, account in self.accounts.items():
            owner = self.users[self.owner_of[key]]
            assert owner is not None
            owner_id = Account.objects.values_list("owner_id", flat=True).get(pk=account.pk)
            assert owner_id == owner.pk
            assert not Membership.objects.filter(account=account, user_id=owner_id).exists()

    @invariant()
    def nobody_receives_email_outside_their_grant(self) -> None:
        """Every email queued since the last step, and everything the worker sends now,
        goes only to someone the model entitles to it."""
        new = list(
            OutboxEmail.objects.filter(pk__gt=self.emails_seen)
            .select_related("account")
            .order_by("pk")
        )
        if new:
            self.emails_seen = new[-1].pk
        key_of = {a.pk: k for k, a in self.accounts.items()}
        person_of = {EMAIL[p]: p for p in PEOPLE}
        for row in new:
            if row.kind == "personal" or row.account_id is None:
                continue  # to the one person it is about (the channel matrix checks who)
            key = key_of[row.account_id]
            assert row.kind in (*ACCOUNT_KINDS, "security"), row.kind
            person = person_of.get(row.to_email)
            if person is not None:
                assert row.kind in self.readable_kinds(person, key), (
                    f"{person} was sent a {row.kind} email of {key}"
                )
                if row.kind == "security":
                    assert person == self.owner_of[key]
            else:
                kinds, confirmed = self.contacts.get((key, row.to_email), (frozenset(), False))
                assert confirmed and row.kind in kinds, (
                    f"contact {row.to_email} was sent a {row.kind} email of {key}"
                )
        # The worker re-checks just before sending: what went out is still entitled now.
        sent_before = set(
            OutboxEmail.objects.filter(status=OutboxEmail.Status.SENT).values_list("pk", flat=True)
        )
        outbox_deliver_due()
        for row in OutboxEmail.objects.filter(status=OutboxEmail.Status.SENT).exclude(
            pk__in=sent_before
        ):
            person = person_of.get(row.to_email)
            if row.kind != "personal" and row.account_id is not None and person is not None:
                assert row.kind in self.readable_kinds(person, key_of[row.account_id])

    @invariant()
    def email_history_opens_exactly_what_the_grant_covers(self) -> None:
        """Whoever the last step touched opens a few of the account's emails in Email
        History: 200 exactly for the kinds their grant covers and their own personal
        emails, with View Email History; otherwise nothing of the email."""
        for person, key in sorted(self.touched):
            user = self.users[person]
            if user is None:
                continue
            access = self.expected_access(person, key)
            can_open = access == OWNER or (isinstance(access, frozenset) and "emails" in access)
            readable = self.readable_kinds(person, key)
            client = browser(user, self.accounts[key])
            rows = OutboxEmail.objects.filter(account=self.accounts[key]).order_by("-pk")[:4]
            for row in rows:
                response = client.get(reverse("notifications:history_detail", args=[row.pk]))
                own = row.kind == "personal" and row.recipient_user_id == user.pk
                want = can_open and (row.kind in readable or own)
                assert (response.status_code == 200) == want, (
                    f"{person} opening a {row.kind} email of {key}: {response.status_code}"
                )

    @invariant()
    def pages_answer_what_the_owner_granted(self) -> None:
        """Whoever the last step changed opens a rotating sample of pages of that account
        (in a second session that names the account): allowed 200, refused 403, ended
        access "access removed"."""
        touched, self.touched = self.touched, set()
        for person, key in sorted(touched):
            user = self.users[person]
            assert user is not None
            if person not in self.probes:
                self.probes[person] = browser(user)
            probe = self.probes[person]
            access = self.expected_access(person, key)
            start = next(self.rotation)
            for i in range(3):
                name = PROBE_ROTATION[(start + i) % len(PROBE_ROTATION)]
                route = next(r for r in PAGES if r.name == name)
                work_in(probe, self.accounts[key])
                got = outcome(probe.get(self.urls[key, name]))
                if access is None:
                    want = "access_removed"
                elif not self.allowed(access, route):
                    want = "forbidden"
                else:
                    want = "not_found" if self.scope_hides(person, key, name) else "ok"
                assert got == want, f"{person} probing {name} of {key}: {got}"


class ScopedAccessMachine(AccessMachine):
    """The access model with resource scopes: the owner limits grants to chosen services
    and domains (or forges a scope naming the other account's items: refused, nothing
    changed), and services and domains move to the other account (leaving every scope
    that named them). After every step reach equals grant and scope: the selectors list
    exactly the account's items inside the scope, and the detail pages of an item inside
    and one outside answer 200 and 404."""

    def scope_init(self) -> None:
        # The items a scope can name, per account: the objects of the pages the machine
        # already requests (never moved) and two more of each kind that may move away.
        self.scopes = {}
        self.page_items = {}
        self.movable: dict[str, dict[str, list[int]]] = {}
        for key, account in self.accounts.items():
            for name, kind in (("hosting:password_change", "service"),
                               ("domains:nameservers", "domain")):  # fmt: skip
                pk = int(resolve(self.urls[key, name]).kwargs["pk"])
                self.page_items[key, name] = (kind, pk)
            self.movable[key] = {
                "service": [ServiceFactory(account=account).pk for _ in range(2)],
                "domain": [DomainFactory(account=account).pk for _ in range(2)],
            }
        self.scope_probed: dict[tuple[str, str], Any] = {}

    def items_of(self, key: str) -> dict[str, list[int]]:
        kinds: dict[str, list[int]] = {"service": [], "domain": []}
        for (k, _), (kind, pk) in sorted(self.page_items.items()):
            if k == key:
                kinds[kind].append(pk)
        for kind, pks in self.movable[key].items():
            kinds[kind].extend(pks)
        return kinds

    def model_scope(self, person: str, key: str) -> dict[str, frozenset[int]] | None:
        if self.expected_access(person, key) == OWNER:
            return None
        return self.scopes.get((person, key))

    def creator_scope(self, person: str, key: str) -> ScopeModel:
        return scope_norm(self.model_scope(person, key))

    def scope_hides(self, person: str, key: str | None, route_name: str) -> bool:
        """Is the object of `route_name`'s page of `key` outside the person's scope?"""
        if key is None or (key, route_name) not in self.page_items:
            return False
        scope = self.model_scope(person, key)
        kind, pk = self.page_items[key, route_name]
        return scope is not None and pk not in scope.get(kind, frozenset())

    @precondition(lambda self: self.grants)
    @rule(data=st.data(), mode=st.sampled_from(["all", "only", "only", "forged"]))
    def change_scope(self, data: st.DataObject, mode: str) -> None:
        """The owner sets or clears a sub-account's scope (permissions and expiry kept)."""
        person, key = data.draw(st.sampled_from(sorted(self.grants)), label="membership")
        membership = self.membership(person, key)
        scope: dict[str, frozenset[int]] | None = None
        if mode != "all":
            items = self.items_of(key)
            scope = {
                kind: frozenset(data.draw(st.sets(st.sampled_from(pks)), label=kind))
                for kind, pks in items.items()
            }
        if mode == "forged":
            other = next(k for k in ACCOUNTS if k != key)
            assert scope is not None
            foreign = self.movable[other]["service"]
            if foreign:  # (the other account's services may all have left it)
                scope = {**scope, "service": scope["service"] | {foreign[0]}}
            if foreign and foreign[0] in self.movable[key]["service"]:
                return  # it moved here meanwhile: not a forgery
        _, status = self.grants[person, key]
        usable = status == "active" and membership.is_usable()
        should = usable and mode != "forged" and key not in self.closed
        before = Membership.objects.values("scope").get(pk=membership.pk)
        try:
            membership_update(
                membership=membership,
                actor=self.owner(key),
                permission_codes=membership.permissions,
                expires_at=membership.expires_at,
                scope=scope,
            )
        except (AccessError, InvitationError):
            assert not should, f"setting {person}'s scope on {key} was refused"
            assert Membership.objects.values("scope").get(pk=membership.pk) == before
            return
        assert should, f"{person}'s scope on {key} was set ({mode})"
        self.scopes[person, key] = scope
        self.tokens_narrow(person, key)
        self.touched.add((person, key))

    @rule(key=accounts_st, kind=st.sampled_from(["service", "domain"]), delete=st.booleans())
    def item_leaves(self, key: str, kind: str, delete: bool) -> None:
        """A movable service or domain of `key` is deleted, or moved to the other account:
        it leaves every scope that named it (and does not come back if it returns)."""
        if not self.movable[key][kind]:
            return
        pk = self.movable[key][kind].pop(0)
        model = Service if kind == "service" else Domain
        item = model.objects.get(pk=pk)
        if delete:
            item.delete()
        else:
            other = next(k for k in ACCOUNTS if k != key)
            item.account = self.accounts[other]
            item.save()
            self.movable[other][kind].append(pk)
        for (person, k), scope in list(self.scopes.items()):
            if k == key and scope is not None:
                self.scopes[person, k] = {**scope, kind: scope.get(kind, frozenset()) - {pk}}
        for token in self.api_tokens.values():  # and every token scope of the account
            if token.key == key and token.scope is not None:
                token.scope = {**token.scope, kind: token.scope[kind] - {pk}}

    @invariant()
    def reach_is_grant_and_scope(self) -> None:
        """Everyone's access carries the model's scope, and the lists hold exactly the
        account's services and domains inside it. Whoever's reach changed opens the
        detail page of an item inside their scope and of one outside: 200 and 404."""
        for person, user in self.users.items():
            if user is None:
                continue
            for key, account in self.accounts.items():
                access = access_for(user, account.pk)
                if access is None:
                    continue
                want = self.model_scope(person, key)
                assert access.scope == want, f"{person}'s scope on {key}"
                # What the account holds now (the model's items, and any a rule made).
                items = {
                    "service": sorted(
                        Service.objects.filter(account=account).values_list("pk", flat=True)
                    ),
                    "domain": sorted(
                        Domain.objects.filter(account=account).values_list("pk", flat=True)
                    ),
                }
                for kind, pks in self.items_of(key).items():
                    assert set(pks) <= set(items[kind]), f"{kind}s of {key}"
                services = {s.pk for s in service_list_for(access=access)}
                domains = {d.pk for d in domain_list_for(access=access)}
                reach = {
                    kind: set(pks) if want is None else set(pks) & want.get(kind, frozenset())
                    for kind, pks in items.items()
                }
                assert services == reach["service"], f"{person}'s services on {key}"
                assert domains == reach["domain"], f"{person}'s domains on {key}"
                state = (want, access.permissions, tuple(map(tuple, items.values())))
                if self.scope_probed.get((person, key)) == state:
                    continue
                self.scope_probed[person, key] = state
                probe = browser(user, account)
                for kind, url_name, perm in (("service", "hosting:detail", "products"),
                                             ("domain", "domains:detail", "domains")):  # fmt: skip
                    for pk in items[kind][:1] + items[kind][-1:]:
                        got = outcome(probe.get(reverse(url_name, args=[pk])))
                        if not access.has(perm):
                            expected = "forbidden"
                        else:
                            expected = "ok" if pk in reach[kind] else "not_found"
                        assert got == expected, f"{person} GET {url_name} {pk} of {key}: {got}"


def test_the_access_model_holds_with_resource_scopes() -> None:
    run_state_machine_as_test(
        ScopedAccessMachine,
        settings=settings(
            max_examples=20,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        ),
    )


def test_the_access_model_holds_under_random_sequences() -> None:
    run_state_machine_as_test(
        AccessMachine,
        settings=settings(
            max_examples=30,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            # No "explain" phase: tracing every line of Django after a failure takes
            # minutes; the shrunk steps and the assertion say enough.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        ),
    )
