"""Conformance of the model with the real app (issue 17): every state the explorer
reaches is replayed on the real app, and the model's predicted reach is compared with the
app's own answers. The one module of the model that imports Django.

How a run goes:

- ``World`` builds the real fixture with the real models and factories: people P0 and P1
  with a login (P2 has none until they accept an invitation as a new user), accounts A0
  (owned by P0) and A1 (owned by P1), one service and one domain per account (the
  model's two items), staff, and one email of each of the model's kinds per account in
  the outbox, addressed to someone else (what Email History lists).
- The one-account trees (actions on A0 only: the exploration that stands for both
  accounts, see ``compose``) also give P2 a login "elsewhere": P2 accepts, as a new
  user, an invitation to a third account outside the model (``World.elsewhere``, where
  P0 and P1 hold every permission from the start), whose answers are not compared.
- The clock is ``time_machine``'s: one model tick is 4 days.
- ``Checker.run`` walks the explorer's tree of distinct states depth-first (each state's
  shortest sequence, as the explorer found it), applying one action per state in a
  savepoint that is rolled back afterwards: a state costs one action and one check, and
  every child starts from its parent's real state.
- Each action is replayed through the service function ``rules.SERVICE_OF`` names; an
  action the model applies must be accepted, one it refuses must be refused and change
  nothing (a snapshot of the access tables before and after). Steps off the tree (a
  refused one, or one leading to a state met before) are sampled, each in a savepoint:
  the first state where each (action, model reason) refusal occurs, and the first where
  each accepted action occurs for a given access of its actor and target (and token),
  then checked as a tree step is.
- After each action, level (a), the real policy: every person's ``access_for`` on each
  account (owner, permissions, scope), then, per route group of the route table,
  ``Access.allows`` and the object's scope; every live token through
  ``token_authenticate`` and the permission check of ``TokenPermission`` per endpoint
  group; who may be sent each of the model's emails (``Access.reads_email``) and what
  the secondary contact receives (``may_contact_receive``); Email History
  (``email_history_for``); and each account email the step queued in the outbox went
  only to someone the model entitles to it.
- Level (b), HTTP with the test client and CSRF checks on, for a deterministic sample:
  the first state where each distinct reach of a person (their access) or of a token
  (the endpoint groups it reaches) appears, every page route of the table is requested
  as that person on that account (and every API route with that token); "reached" must
  be what the model says, route by route.

The first disagreement stops the run (``Disagreement``) with the action sequence and the
first differing route, token or email.

A run can be split into shards, one process each (``make prove``): the subtrees under
the states at depth ``SHARD_DEPTH`` are dealt out in turn, and so are the random walks;
``conformance_stats`` merges the shards' counts and checks they cover every state.

Not covered: what the model leaves out (payments, tickets opened, several contacts or
tokens per person); pages over HTTP only for the sample; an accepted step that leads to a
state met before only for the first of its kind; the account's emails are checked through
the policy (``reads_email``, ``may_contact_receive``) and the rows each step queued, not
by sending one of each kind per state.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine
from django.db import transaction
from django.urls import reverse

from acceptance.actors import CSRF, browser
from acceptance.objects import (
    IN_SCOPE_KWARGS,
    OBJECT_KWARGS,
    OWNERS_OBJECT_ROUTES,
    PLACEHOLDER_ROUTES,
    STATIC_KWARGS,
)
from clientarea.access_table import ROUTES, Route
from clientarea.accounts import ownership as ownership_services
from clientarea.accounts import permissions
from clientarea.accounts import policy as real_policy
from clientarea.accounts import services as account_services
from clientarea.accounts.models import (
    Account,
    Contact,
    Invitation,
    Membership,
    OwnershipTransfer,
    User,
)
from clientarea.accounts.policy import AccessRule, NotPermitted, OutOfReach, RuleKind
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory, UserFactory
from clientarea.accounts.tests.helpers import LINK_RE
from clientarea.api import services as api_services
from clientarea.api.models import ApiToken
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications import selectors as email_selectors
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.services import email_queue

from . import reach as model_reach
from .catalogue import ALL_CODES, DOMAIN_ITEM, EMAILS, EVERYTHING, GRANTS, SERVICE
from .conformance_stats import Stats
from .explore import explore
from .invariants import mark_orphans
from .routes import PAGE_GROUPS, TOKEN_GROUPS, item_of, needed, rule_of
from .rules import STAFF, Action, actions, apply
from .state import ACCOUNTS, USERS, State, initial

BASE = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
# A run split into shards deals out the subtrees under the states at this depth.
SHARD_DEPTH = 2
TICK = timedelta(days=4)  # catalogue: one tick is 4 days
STEP = timedelta(microseconds=1)  # between two actions replayed (see Ctx.steps)
SOON = timedelta(days=3)  # "Access expires" soon: before the next tick
TOKEN_LIFE = timedelta(days=6)  # alive after one tick, expired after two
EMAIL = {u: f"p{u}@model.example" for u in USERS}
CONTACT_EMAIL = {a: f"contact{a}@model.example" for a in ACCOUNTS}
SOMEONE_ELSE = "someone-else@model.example"
PASSWORD = "a model passphrase, 42"
IP = "127.0.0.1"

# What the real services raise when they refuse.
REFUSALS: tuple[type[BaseException], ...] = (
    account_services.AccessError,
    account_services.InvitationError,
    account_services.ContactError,
    ownership_services.OwnershipError,
    api_services.TokenError,
    api_services.TokenRefused,
    OutOfReach,
    NotPermitted,
)
# Model-only refusals (limits of the small world, not rules of the app): not replayed.
MODEL_ONLY = "(model)"


class Disagreement(AssertionError):
    """The model and the app answer differently."""

    def __init__(self, sequence: tuple[Action, ...], what: str, model: Any, real: Any) -> None:
        self.sequence = sequence
        self.what = what
        self.model = model
        self.real = real
        super().__init__(self.describe())

    def describe(self) -> str:
        steps = "\n".join(f"  {i + 1}. {a.describe()}" for i, a in enumerate(self.sequence))
        return (
            f"the model and the app disagree on {self.what}\n"
            f"  model: {self.model}\n  app:   {self.real}\n"
            f"after {len(self.sequence)} steps:\n{steps or '  (none)'}"
        )


class _Refused(Exception):
    """The real app refused the replayed action."""


@dataclass
class Ctx:
    """What the replay keeps outside the database for one state (rolled back with it by
    copying): the clock, the links people hold, the tokens' secrets, P2's login."""

    clock: int = 0
    # Actions replayed so far: each happens one microsecond after the one before, as two
    # requests never share an instant in production (the app orders some events by their
    # times: a revocation made at the very instant of a transfer offer counts as after it).
    steps: int = 0
    invite_link: dict[tuple[int, int], str] = field(default_factory=dict)
    old_invite_link: dict[tuple[int, int], str] = field(default_factory=dict)
    transfer_link: dict[int, str] = field(default_factory=dict)
    old_transfer_link: dict[int, str] = field(default_factory=dict)
    contact_link: dict[int, str] = field(default_factory=dict)
    tokens: dict[tuple[int, int], tuple[int, str]] = field(default_factory=dict)
    new_user: User | None = None  # P2, once they have a login

    def copy(self) -> Ctx:
        return Ctx(
            self.clock,
            self.steps,
            dict(self.invite_link),
            dict(self.old_invite_link),
            dict(self.transfer_link),
            dict(self.old_transfer_link),
            dict(self.contact_link),
            dict(self.tokens),
            self.new_user,
        )


class World:
    """The real fixture the model's people and accounts are mapped to."""

    def __init__(self) -> None:
        self.people: dict[int, User] = {}
        for u in USERS:
            if u != 2:  # P2 has no login yet
                person: User = UserFactory(email=EMAIL[u], first_name=f"P{u}")
                self.people[u] = person
        self.staff: User = UserFactory(email="staff@model.example", is_staff=True)
        self.account_pk: dict[int, int] = {}
        self.item_pk: dict[int, dict[str, int]] = {}
        self.history: dict[int, dict[int, tuple[str, str]]] = {}
        for a in ACCOUNTS:
            account: Account = AccountFactory(owner=self.people[a], company_name=f"A{a}")
            self.account_pk[a] = account.pk
            self.item_pk[a] = {
                SERVICE: ServiceFactory(account=account).pk,
                DOMAIN_ITEM: DomainFactory(account=account).pk,
            }
            self.history[a] = {}
            for kind, item in EMAILS:
                about = (item, self.item_pk[a][item]) if item else None
                row = email_queue(
                    to_email=SOMEONE_ELSE,
                    subject=f"{kind} news",
                    body="News.",
                    kind=kind,
                    account=account,
                    about=about,
                )
                self.history[a][row.pk] = (kind, item)
        self.index_of_account = {pk: a for a, pk in self.account_pk.items()}
        # An account outside the model: where a person gets a login "elsewhere"
        # (rules.login_elsewhere) in the one-account trees.
        self.elsewhere_owner: User = UserFactory(email="elsewhere@model.example")
        self.elsewhere: Account = AccountFactory(
            owner=self.elsewhere_owner, company_name="Elsewhere"
        )
        # P0 and P1 hold every permission there: every answer about A0 and A1 is
        # compared with a person's access to another account around.
        for u in (0, 1):
            MembershipFactory(
                account=self.elsewhere, user=self.people[u], permissions=sorted(ALL_CODES)
            )

    def account(self, a: int) -> Account:
        return Account.objects.select_related("owner").get(pk=self.account_pk[a])

    def accounts_and_contacts(self) -> tuple[dict[int, Account], dict[int, Contact | None]]:
        """Both accounts as they are now, and each one's model contact (if any), in two
        queries: what every state's check reads."""
        by_pk = Account.objects.select_related("owner").in_bulk(list(self.account_pk.values()))
        contacts: dict[int, Contact | None] = dict.fromkeys(ACCOUNTS)
        rows = Contact.objects.filter(
            account_id__in=list(by_pk), email__in=[CONTACT_EMAIL[a] for a in ACCOUNTS]
        ).order_by("pk")
        for contact in rows:
            a = self.index_of_account[contact.account_id]
            if contact.email == CONTACT_EMAIL[a] and contacts[a] is None:
                contacts[a] = contact
        return {a: by_pk[pk] for a, pk in self.account_pk.items()}, contacts

    def user(self, u: int, ctx: Ctx) -> User | None:
        if u == STAFF:
            return self.staff
        if u == 2:
            return ctx.new_user
        return self.people[u]

    def about(self, a: int, item: str) -> tuple[str, int] | None:
        return (item, self.item_pk[a][item]) if item else None

    def item_of_row(self, a: int, about_kind: str, about_id: int | None) -> str:
        if not about_kind:
            return ""
        for item, pk in self.item_pk[a].items():
            if item == about_kind and pk == about_id:
                return item
        return f"{about_kind}#{about_id}"


def _latest_link(to_email: str, marker: str) -> str:
    row = (
        OutboxEmail.objects.filter(to_email=to_email, body_text__contains=marker)
        .order_by("-pk")
        .first()
    )
    if row is None:
        raise AssertionError(f"no email with {marker} queued for {to_email}")
    if marker == "/invitation/":
        match = LINK_RE.search(row.body_text)
        assert match is not None, row.body_text
        return match.group("token")
    return row.body_text.split(marker, 1)[1].split("/", 1)[0]


def _snapshot() -> dict[str, Any]:
    """What a refused action must leave as it was."""
    return {
        "accounts": list(
            Account.objects.order_by("pk").values_list(
                "pk", "owner_id", "closed_at", "close_requested_at"
            )
        ),
        "memberships": list(
            Membership.objects.order_by("pk").values_list(
                "pk", "user_id", "permissions", "scope", "status", "expires_at"
            )
        ),
        "invitations": list(
            Invitation.objects.order_by("pk").values_list(
                "pk", "status", "token_hash", "expires_at", "permissions"
            )
        ),
        "transfers": list(
            OwnershipTransfer.objects.order_by("pk").values_list("pk", "status", "token_hash")
        ),
        "tokens": list(
            ApiToken.objects.order_by("pk").values_list(
                "pk", "revoked_at", "permissions", "scope", "manages_users"
            )
        ),
        "contacts": list(Contact.objects.order_by("pk").values_list("pk", "confirmed_at")),
        "users": User.objects.count(),
        "outbox": OutboxEmail.objects.count(),
    }


@contextmanager
def rolled_back() -> Iterator[None]:
    """A savepoint that is always rolled back. Marked as a test's own block (as the access
    matrix does): the app sees a request or a service call in it as outside any
    transaction of its own, as in production."""
    block = transaction.atomic()
    block._from_testcase = True
    with block:
        yield
        transaction.set_rollback(True)


# --- the real answers ---------------------------------------------------------------------


def _rule(rule: str) -> list[AccessRule]:
    if rule == "account":
        return [AccessRule(RuleKind.ACCOUNT)]
    if rule == "owner":
        return [AccessRule(RuleKind.OWNER)]
    return [AccessRule(RuleKind.PERMISSION, code) for code in needed(rule)]


def model_access_of(world: World, a: int, access: Any) -> model_reach.Access | None:
    """The real access, in the model's terms (scope: the model's items it names)."""
    if access is None:
        return None
    if access.scope is None:
        scope = EVERYTHING
    else:
        scope = tuple(
            sorted(
                item
                for item, pk in world.item_pk[a].items()
                if pk in access.scope.get(item, frozenset())
            )
        )
    perms = ALL_CODES if access.is_owner else frozenset(access.permissions)
    return model_reach.Access(access.is_owner, perms, scope)


class Checker:
    """Replays model states on the real app and compares their reach."""

    def __init__(
        self,
        world: World,
        clock: Any,
        *,
        http: bool = True,
        http_routes: Callable[[Route], bool] | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.world = world
        self.shard = shard  # (this one, of how many): see _my_part
        self.shard_depth = SHARD_DEPTH
        # Set to a list to record what is checked: (the tree's number, the state's steps).
        self.checked: list[tuple[int, tuple[Action, ...]]] | None = None
        self.clock = clock  # time_machine's coordinates
        self.http = http
        self.http_routes = http_routes or (lambda route: True)
        self.stats = Stats()
        self._pages_memo: dict[tuple[int, Any], frozenset[tuple[str, str]]] = {}
        self._history_memo: dict[tuple[int, Any], frozenset[tuple[str, str]]] = {}
        self._refusals_seen: set[tuple[str, str]] = set()
        self._accepted_seen: set[Any] = set()
        self._http_seen: set[Any] = set()
        self.elsewhere = False  # the tree being walked offers rules.login_elsewhere

    # --- the clock ---------------------------------------------------------------------

    def at(self, ctx: Ctx) -> None:
        self.clock.move_to(BASE + ctx.clock * TICK + ctx.steps * STEP)

    # --- replaying one action ------------------------------------------------------------

    def replay(self, act: Action, s: State, ctx: Ctx) -> None:
        """Do `act` on the real app (ctx is updated in place); _Refused if it refuses."""
        ctx.steps += 1
        self.at(ctx)
        self.stats.actions_replayed += 1
        try:
            getattr(self, f"_do_{act.name}")(act, s, ctx)
        except REFUSALS as exc:
            raise _Refused(str(exc)) from exc

    def _actor(self, act: Action, ctx: Ctx) -> User:
        user = self.world.user(act.actor, ctx)
        assert user is not None, f"{act.describe()}: no login"
        return user

    def _invitation(self, a: int, u: int) -> Invitation:
        return Invitation.objects.filter(
            account_id=self.world.account_pk[a], email=EMAIL[u]
        ).latest("pk")

    def _membership(self, a: int, u: int, ctx: Ctx) -> Membership:
        return Membership.objects.get(
            account_id=self.world.account_pk[a], user=self.world.user(u, ctx)
        )

    def _token_grant(self, a: int, c: int, ctx: Ctx) -> Any:
        found = ctx.tokens.get((a, c))
        if found is None:
            raise _Refused("no such token")
        return api_services.token_authenticate(secret=found[1], ip=IP).access

    def _invite_with(self, act: Action, ctx: Ctx, **who: Any) -> None:
        a, u = act.account, act.target
        before = ctx.invite_link.get((a, u))
        account_services.invitation_create(
            account=self.world.account(a),
            email=EMAIL[u],
            permission_codes=GRANTS[act.arg],
            **who,
        )
        if before is not None:
            ctx.old_invite_link[a, u] = before
        ctx.invite_link[a, u] = _latest_link(EMAIL[u], "/invitation/")

    def _do_invite(self, act: Action, s: State, ctx: Ctx) -> None:
        self._invite_with(act, ctx, actor=self._actor(act, ctx))

    def _do_api_invite(self, act: Action, s: State, ctx: Ctx) -> None:
        grant = self._token_grant(act.account, act.actor, ctx)
        if not grant.holds_power(permissions.OwnerPower.MANAGE_USERS):
            raise _Refused("the token does not carry the Users power (403)")
        self._invite_with(act, ctx, access=grant)

    def _do_resend(self, act: Action, s: State, ctx: Ctx) -> None:
        a, u = act.account, act.target
        account_services.invitation_resend(
            invitation=self._invitation(a, u), actor=self._actor(act, ctx)
        )
        ctx.old_invite_link[a, u] = ctx.invite_link[a, u]
        ctx.invite_link[a, u] = _latest_link(EMAIL[u], "/invitation/")

    def _do_cancel(self, act: Action, s: State, ctx: Ctx) -> None:
        account_services.invitation_cancel(
            invitation=self._invitation(act.account, act.target), actor=self._actor(act, ctx)
        )

    def _do_accept(self, act: Action, s: State, ctx: Ctx) -> None:
        account_services.invitation_accept(
            token=ctx.invite_link[act.account, act.target], user=self._actor(act, ctx)
        )

    def _accept_new(self, token: str, ctx: Ctx) -> None:
        user, _ = account_services.invitation_accept_new_user(
            token=token, first_name="P2", last_name="Model", password=PASSWORD
        )
        ctx.new_user = user

    def _do_accept_new(self, act: Action, s: State, ctx: Ctx) -> None:
        self._accept_new(ctx.invite_link[act.account, act.target], ctx)

    def _do_accept_old_link(self, act: Action, s: State, ctx: Ctx) -> None:
        token = ctx.old_invite_link[act.account, act.target]
        user = self.world.user(act.target, ctx)
        if user is None:
            self._accept_new(token, ctx)
        else:
            account_services.invitation_accept(token=token, user=user)

    def _update(self, act: Action, ctx: Ctx, **change: Any) -> None:
        m = self._membership(act.account, act.target, ctx)
        fields: dict[str, Any] = {
            "permission_codes": m.permissions,
            "expires_at": m.expires_at,
            **change,
        }
        account_services.membership_update(membership=m, actor=self._actor(act, ctx), **fields)

    def _do_edit(self, act: Action, s: State, ctx: Ctx) -> None:
        self._update(act, ctx, permission_codes=GRANTS[act.arg])

    def _do_set_scope(self, act: Action, s: State, ctx: Ctx) -> None:
        items = self.world.item_pk[act.account]
        scope = None if act.arg == "all" else {SERVICE: [items[SERVICE]], DOMAIN_ITEM: []}
        self._update(act, ctx, scope=scope)

    def _do_set_expiry(self, act: Action, s: State, ctx: Ctx) -> None:
        from django.utils import timezone

        expires = timezone.now() + SOON if act.arg == "soon" else None
        self._update(act, ctx, expires_at=expires)

    def _do_revoke(self, act: Action, s: State, ctx: Ctx) -> None:
        account_services.membership_revoke(
            membership=self._membership(act.account, act.target, ctx),
            actor=self._actor(act, ctx),
        )

    def _do_api_revoke(self, act: Action, s: State, ctx: Ctx) -> None:
        grant = self._token_grant(act.account, act.actor, ctx)
        if not grant.holds_power(permissions.OwnerPower.MANAGE_USERS):
            raise _Refused("the token does not carry the Users power (403)")
        account_services.membership_revoke(
            membership=self._membership(act.account, act.target, ctx), access=grant
        )

    def _do_transfer_start(self, act: Action, s: State, ctx: Ctx) -> None:
        a = act.account
        ownership_services.ownership_transfer_start(
            account=self.world.account(a),
            actor=self._actor(act, ctx),
            to_email=EMAIL[act.target],
            former_owner_stays=act.arg == "stays",
            keep_payment_methods=False,
        )
        if a in ctx.transfer_link:
            ctx.old_transfer_link[a] = ctx.transfer_link[a]
        ctx.transfer_link[a] = _latest_link(EMAIL[act.target], "/ownership/")

    def _transfer(self, a: int) -> OwnershipTransfer:
        return OwnershipTransfer.objects.filter(account_id=self.world.account_pk[a]).latest("pk")

    def _do_transfer_cancel(self, act: Action, s: State, ctx: Ctx) -> None:
        ownership_services.ownership_transfer_cancel(
            transfer=self._transfer(act.account), actor=self._actor(act, ctx)
        )

    def _do_transfer_accept(self, act: Action, s: State, ctx: Ctx) -> None:
        ownership_services.ownership_transfer_accept(
            token=ctx.transfer_link[act.account], user=self._actor(act, ctx)
        )

    def _do_transfer_accept_old_link(self, act: Action, s: State, ctx: Ctx) -> None:
        ownership_services.ownership_transfer_accept(
            token=ctx.old_transfer_link[act.account], user=self._actor(act, ctx)
        )

    def _do_close_request(self, act: Action, s: State, ctx: Ctx) -> None:
        ownership_services.account_close_request(
            account=self.world.account(act.account), actor=self._actor(act, ctx)
        )

    def _do_close_confirm(self, act: Action, s: State, ctx: Ctx) -> None:
        ownership_services.account_close_confirm(
            account=self.world.account(act.account), staff=self.world.staff
        )

    def _do_token_create(self, act: Action, s: State, ctx: Ctx) -> None:
        from django.utils import timezone

        a = act.account
        actor = self._actor(act, ctx)
        grant, scope_arg, *users = act.arg.split("/")
        if grant == "mine":
            access = real_policy.access_for(actor, self.world.account_pk[a])
            codes = sorted(access.permissions) if access is not None else sorted(ALL_CODES)
        else:
            codes = list(GRANTS[grant])
        items = self.world.item_pk[a]
        scope = None if scope_arg == "all" else {SERVICE: [items[SERVICE]], DOMAIN_ITEM: []}
        token, secret = api_services.token_create(
            account=self.world.account(a),
            actor=actor,
            name="Script",
            permission_codes=codes,
            expires_at=timezone.now() + TOKEN_LIFE,
            scope=scope,
            manages_users=bool(users),
        )
        ctx.tokens[a, act.actor] = (token.pk, secret)

    def _do_token_revoke(self, act: Action, s: State, ctx: Ctx) -> None:
        pk, _ = ctx.tokens[act.account, act.target]
        api_services.token_revoke(token=ApiToken.objects.get(pk=pk), actor=self._actor(act, ctx))

    def _do_contact_add(self, act: Action, s: State, ctx: Ctx) -> None:
        a = act.account
        account_services.contact_create(
            account=self.world.account(a),
            actor=self._actor(act, ctx),
            data={"name": f"Contact {a}", "email": CONTACT_EMAIL[a], "email_kinds": [act.arg]},
        )
        ctx.contact_link[a] = _latest_link(CONTACT_EMAIL[a], "/contacts/confirm/")

    def _do_contact_confirm(self, act: Action, s: State, ctx: Ctx) -> None:
        account_services.contact_confirm(token=ctx.contact_link[act.account])

    def _do_login_elsewhere(self, act: Action, s: State, ctx: Ctx) -> None:
        """The person accepts, as a new user, an invitation to an account outside the
        model (what another account's invitation does to this one: a login)."""
        w = self.world
        account_services.invitation_create(
            account=w.elsewhere,
            email=EMAIL[act.actor],
            permission_codes=GRANTS["INV"],
            actor=w.elsewhere_owner,
        )
        self._accept_new(_latest_link(EMAIL[act.actor], "/invitation/"), ctx)

    def _do_tick(self, act: Action, s: State, ctx: Ctx) -> None:
        ctx.clock += 1
        self.at(ctx)

    def _do_worker(self, act: Action, s: State, ctx: Ctx) -> None:
        done = (
            account_services.membership_expire_due()
            + account_services.invitation_expire_due()
            + ownership_services.ownership_transfer_expire_due()
        )
        if not done:
            raise _Refused("(nothing due)")

    # --- comparing reach -----------------------------------------------------------------

    def _real_pages(self, a: int, access: Any, key: Any) -> frozenset[tuple[str, str]]:
        memo = self._pages_memo.get((a, key))
        if memo is not None:
            return memo
        out = set()
        for rule, item in PAGE_GROUPS:
            if not all(access.allows(r) for r in _rule(rule)):
                continue
            if item and not access.in_scope(item, self.world.item_pk[a][item]):
                continue
            out.add((rule, item))
        found = frozenset(out)
        self._pages_memo[a, key] = found
        return found

    def _real_history(self, a: int, access: Any, key: Any) -> frozenset[tuple[str, str]]:
        if not access.has(permissions.Perm.EMAILS.value):
            return frozenset()
        memo = self._history_memo.get((a, key))
        if memo is not None:
            return memo
        mine = self.world.history[a]
        rows = email_selectors.email_history_for(access).filter(pk__in=sorted(mine))
        found = frozenset(mine[pk] for pk in rows.values_list("pk", flat=True))
        self._history_memo[a, key] = found
        return found

    def _real_token(self, a: int, c: int, ctx: Ctx) -> frozenset[tuple[str, str]]:
        found = ctx.tokens.get((a, c))
        if found is None:
            return frozenset()
        self.stats.tokens_checked += 1
        try:
            grant = api_services.token_authenticate(secret=found[1], ip=IP).access
        except api_services.TokenRefused:
            return frozenset()
        out = set()
        for rule, item in TOKEN_GROUPS:
            if rule == "token":
                ok = True
            elif rule == "token:owner":  # TokenPermission: the owner power
                ok = grant.holds_power(permissions.OwnerPower.MANAGE_USERS)
            else:
                ok = all(grant.has(code) for code in needed(rule))
            if ok and item:
                ok = grant.in_scope(item, self.world.item_pk[a][item])
            if ok:
                out.add((rule, item))
        return frozenset(out)

    def check_state(self, s: State, ctx: Ctx, seq: tuple[Action, ...]) -> None:
        """Level (a): the real policy's answers for everyone in this state."""
        self.at(ctx)
        self.stats.states += 1
        self.stats.max_depth = max(self.stats.max_depth, len(seq))
        w = self.world
        accounts, contacts = w.accounts_and_contacts()
        for a in ACCOUNTS:
            account = accounts[a]
            for u in USERS:
                user = w.user(u, ctx)
                if (user is not None) != s.logins[u]:
                    raise Disagreement(seq, f"whether P{u} has a login", s.logins[u], user)
                real = real_policy.access_for(user, account.pk) if user is not None else None
                want = model_reach.access_for(s, u, a)
                got = model_access_of(w, a, real)
                if got != want:
                    raise Disagreement(seq, f"P{u}'s access to A{a}", want, got)
                self.stats.policy_checks += 1
                pages = self._real_pages(a, real, got) if real is not None else frozenset()
                want_pages = model_reach.person_pages(s, u, a)
                _same_reach(seq, f"P{u}'s pages of A{a}", want_pages, pages)
                receives = frozenset(
                    (kind, item)
                    for kind, item in EMAILS
                    if real is not None and real.reads_email(kind, *_about(w.about(a, item)))
                )
                want_receives = model_reach.person_receives(s, u, a)
                _same_reach(seq, f"the emails of A{a} P{u} may be sent", want_receives, receives)
                history = self._real_history(a, real, got) if real is not None else frozenset()
                want_history = model_reach.person_history(s, u, a)
                _same_reach(seq, f"P{u}'s Email History of A{a}", want_history, history)
                tokens = self._real_token(a, u, ctx)
                want_tokens = model_reach.token_endpoints(s, a, u)
                _same_reach(seq, f"the API through P{u}'s token on A{a}", want_tokens, tokens)
                self.stats.policy_checks += len(PAGE_GROUPS) + len(TOKEN_GROUPS) + 2 * len(EMAILS)
            self._check_contact(s, seq, a, account, contacts[a])

    def _check_contact(
        self, s: State, seq: tuple[Action, ...], a: int, account: Account, contact: Contact | None
    ) -> None:
        got: frozenset[tuple[str, str]] = frozenset()
        if contact is not None:
            got = frozenset(
                (kind, item)
                for kind, item in EMAILS
                if kind in permissions.ACCOUNT_EMAIL_KINDS
                and real_policy.may_contact_receive(
                    contact, kind, account, about=self.world.about(a, item)
                )
            )
        want = model_reach.contact_receives(s, a)
        if got != want:
            raise Disagreement(seq, f"what A{a}'s contact receives", sorted(want), sorted(got))

    def check_step_emails(self, post: State, ctx: Ctx, seq: tuple[Action, ...], mark: int) -> None:
        """Every account email the step queued went to someone the model entitles to it
        in the state after the step."""
        w = self.world
        rows = OutboxEmail.objects.filter(
            pk__gt=mark, account_id__in=list(w.account_pk.values())
        ).exclude(kind=permissions.EmailKind.PERSONAL.value)
        person_of = {EMAIL[u]: u for u in USERS}
        for row in rows.values("to_email", "kind", "account_id", "about_kind", "about_id"):
            self.stats.step_emails += 1
            a = w.index_of_account[row["account_id"]]
            email = (row["kind"], w.item_of_row(a, row["about_kind"], row["about_id"]))
            to = row["to_email"]
            if to in person_of:
                ok = email in model_reach.person_receives(post, person_of[to], a)
            elif to == CONTACT_EMAIL[a]:
                ok = email in model_reach.contact_receives(post, a)
            else:
                ok = False
            if not ok:
                raise Disagreement(
                    seq, f"who the step's {email[0]} email of A{a} went to", "not them", to
                )

    # --- refusals ------------------------------------------------------------------------

    def check_transitions(self, s: State, ctx: Ctx, seq: tuple[Action, ...]) -> None:
        """The steps the tree does not replay (they lead to a state met before, or are
        refused), sampled: the first time each refusal (action, reason) occurs, the app
        refuses too and nothing changes; the first time each accepted action occurs for
        a given actor's and target's access (and token), the app accepts it and its
        answers after it are the model's."""
        for act in actions(s, elsewhere=self.elsewhere):
            out = apply(s, act)
            if out.ok:
                self._check_accepted(s, ctx, seq, act, out.state)
                continue
            if out.reason.startswith(MODEL_ONLY):
                continue
            key = (act.name, out.reason)
            if key in self._refusals_seen:
                continue
            self._refusals_seen.add(key)
            self.stats.refusals_checked += 1
            with rolled_back():
                before = _snapshot()
                try:
                    self.replay(act, s, ctx.copy())
                except _Refused:
                    pass
                else:
                    raise Disagreement(
                        (*seq, act),
                        f"whether {act.describe()} is refused",
                        f"refused: {out.reason}",
                        "accepted",
                    )
                after = _snapshot()
                if after != before:
                    changed = sorted(k for k in before if before[k] != after[k])
                    raise Disagreement(
                        (*seq, act), "what a refused action changed", "nothing", changed
                    )
            self.at(ctx)

    def _check_accepted(
        self, s: State, ctx: Ctx, seq: tuple[Action, ...], act: Action, after: State
    ) -> None:
        a = act.account
        person = act.actor >= 0 and a >= 0
        key = (
            act.name,
            act.arg,
            model_reach.access_for(s, act.actor, a) if person else None,
            model_reach.token_grant(s, a, act.actor) if act.name.startswith("api_") else None,
            model_reach.access_for(s, act.target, a) if act.target >= 0 and a >= 0 else None,
        )
        if key in self._accepted_seen:
            return
        self._accepted_seen.add(key)
        self.stats.transitions_checked += 1
        with rolled_back():
            post, child, path = self.step(s, ctx, seq, act)
            states = self.stats.states
            self.check_state(post, child, path)
            self.stats.states = states
        self.at(ctx)

    # --- HTTP ------------------------------------------------------------------------------

    def check_http(self, s: State, ctx: Ctx, seq: tuple[Action, ...]) -> None:
        """Level (b), for the first state where each distinct reach appears."""
        if not self.http:
            return
        start = time.monotonic()
        try:
            with _quiet_requests():
                self._check_http(s, ctx, seq)
        finally:
            self.stats.http_seconds += time.monotonic() - start

    def _check_http(self, s: State, ctx: Ctx, seq: tuple[Action, ...]) -> None:
        for a in ACCOUNTS:
            for u in USERS:
                user = self.world.user(u, ctx)
                if user is None:
                    continue
                key = ("person", model_reach.access_for(s, u, a))
                if key not in self._http_seen:
                    self._http_seen.add(key)
                    self._http_pages(s, ctx, seq, a, u, user)
                endpoints = model_reach.token_endpoints(s, a, u)
                tkey = ("token", endpoints)
                if (a, u) in ctx.tokens and tkey not in self._http_seen:
                    self._http_seen.add(tkey)
                    self._http_api(s, ctx, seq, a, u, endpoints)

    def _url(self, route: Route, a: int, account: Account) -> str:
        kwargs: dict[str, Any] = dict(STATIC_KWARGS.get(route.name, {}))
        if route.object_param:
            item = item_of(route)
            if route.name in IN_SCOPE_KWARGS and item:
                # An object about the account's item of the model (a ticket about it).
                from clientarea.domains.models import Domain
                from clientarea.hosting.models import Service

                service = Service.objects.get(pk=self.world.item_pk[a][SERVICE])
                domain = Domain.objects.get(pk=self.world.item_pk[a][DOMAIN_ITEM])
                kwargs.update(IN_SCOPE_KWARGS[route.name](account, service, domain))
            elif item:  # the item itself
                kwargs[route.object_param] = self.world.item_pk[a][item]
            elif route.name == "accounts:ownership_transfer_cancel" and (
                pending := OwnershipTransfer.objects.filter(
                    account=account, status=OwnershipTransfer.Status.PENDING
                ).first()
            ):
                kwargs["transfer_id"] = pending.pk  # one pending offer per account
            else:
                kwargs.update(OBJECT_KWARGS[route.name](account))
        return reverse(route.name, kwargs=kwargs or None)

    def _http_pages(
        self, s: State, ctx: Ctx, seq: tuple[Action, ...], a: int, u: int, user: User
    ) -> None:
        self.at(ctx)
        self.stats.http_samples += 1
        want = model_reach.person_pages(s, u, a)
        with rolled_back():
            account = self.world.account(a)
            client = browser(user, account)
            for route in ROUTES:
                rule = rule_of(route)
                if rule is None or route.is_api or route.name in OWNERS_OBJECT_ROUTES:
                    continue
                if not self.http_routes(route):
                    continue
                url = self._url(route, a, account)
                method = "GET" if "GET" in route.methods else route.methods[0]
                with rolled_back():
                    client.cookies["csrftoken"] = CSRF
                    if method == "GET":
                        response = client.get(url)
                    else:
                        response = client.generic(
                            method,
                            url,
                            f"csrfmiddlewaretoken={CSRF}",
                            content_type="application/x-www-form-urlencoded",
                        )
                self.stats.http_requests += 1
                _no_server_error(response, route, seq, f"P{u} {method} {route.name} on A{a}")
                got = _reached(response, url, route)
                expected = (rule, item_of(route)) in want
                if got != expected:
                    raise Disagreement(
                        seq,
                        f"P{u} {method} {route.name} on A{a} (HTTP)",
                        "reached" if expected else "refused",
                        f"{'reached' if got else 'refused'} ({response.status_code})",
                    )
        self.at(ctx)

    def _http_api(
        self,
        s: State,
        ctx: Ctx,
        seq: tuple[Action, ...],
        a: int,
        c: int,
        want: frozenset[tuple[str, str]],
    ) -> None:
        from django.test import Client

        self.at(ctx)
        self.stats.http_samples += 1
        _, secret = ctx.tokens[a, c]
        with rolled_back(), _route_checks() as passed:
            account = self.world.account(a)
            client = Client()
            for route in ROUTES:
                if not route.is_api or rule_of(route) is None or not self.http_routes(route):
                    continue
                url = self._url(route, a, account)
                method = "GET" if "GET" in route.methods else route.methods[0]
                passed[:] = [False]
                with rolled_back():
                    response = client.generic(
                        method,
                        url,
                        "{}",
                        content_type="application/json",
                        HTTP_AUTHORIZATION=f"Bearer {secret}",
                    )
                self.stats.http_requests += 1
                _no_server_error(response, route, seq, f"P{c}'s token {method} {route.name}")
                # Reached: the route's check let the token through (a service may still
                # refuse the empty body after it), and the object lookup found the object.
                got = passed[0] and response.status_code not in (401, 404)
                expected = (route.rule, item_of(route)) in want
                if got != expected:
                    raise Disagreement(
                        seq,
                        f"P{c}'s token on A{a}: {method} {route.name} (HTTP)",
                        "reached" if expected else "refused",
                        f"{'reached' if got else 'refused'} ({response.status_code})",
                    )
        self.at(ctx)

    # --- walking the states -------------------------------------------------------------

    def visit(self, s: State, ctx: Ctx, seq: tuple[Action, ...]) -> None:
        self.check_state(s, ctx, seq)
        self.check_http(s, ctx, seq)

    def step(
        self, s: State, ctx: Ctx, seq: tuple[Action, ...], act: Action
    ) -> tuple[State, Ctx, tuple[Action, ...]]:
        """Apply `act` in the model and in the app (inside the caller's savepoint)."""
        out = apply(s, act)
        assert out.ok, f"{act.describe()}: the model refuses it ({out.reason})"
        child = ctx.copy()
        mark = OutboxEmail.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        path = (*seq, act)
        try:
            self.replay(act, s, child)
        except _Refused as exc:
            raise Disagreement(
                path, f"whether {act.describe()} is accepted", "accepted", f"refused: {exc}"
            ) from exc
        post = mark_orphans(out.state)
        self.check_step_emails(post, child, path, mark)
        return post, child, path

    def run_tree(
        self, depth: int, *, transitions: bool = True, active: tuple[int, ...] = ACCOUNTS
    ) -> Stats:
        """Every distinct state the explorer reaches within `depth` (acting on the
        `active` accounts, and with logins given elsewhere when that is not every
        account, as the one-account exploration does), depth-first."""
        start, cpu = time.monotonic(), time.process_time()
        states_before = self.stats.states
        children: dict[tuple[Action, ...], list[Action]] = {}

        def collect(path: list[Action], state: State) -> None:
            if path:
                children.setdefault(tuple(path[:-1]), []).append(path[-1])

        self.elsewhere = tuple(active) != tuple(ACCOUNTS)
        explored = explore(depth, on_state=collect, active=active, elsewhere=self.elsewhere)
        mine = self._my_part(children)

        def walk(s: State, ctx: Ctx, seq: tuple[Action, ...]) -> None:
            if mine(seq, True):
                if self.checked is not None:
                    self.checked.append((len(self.stats.trees), seq))
                self.visit(s, ctx, seq)
                if transitions:
                    self.check_transitions(s, ctx, seq)
            for act in children.get(seq, ()):
                if not mine((*seq, act), False):
                    continue
                with rolled_back():
                    post, child, path = self.step(s, ctx, seq, act)
                    walk(post, child, path)
            self.at(ctx)

        walk(initial(), Ctx(), ())
        self.stats.trees.append((depth, len(active), self.stats.states - states_before))
        self.stats.explored.append((explored.depth, explored.states))
        self.stats.seconds += time.monotonic() - start
        self.stats.cpu_seconds += time.process_time() - cpu
        return self.stats

    def _my_part(
        self, children: dict[tuple[Action, ...], list[Action]]
    ) -> Callable[[tuple[Action, ...], bool], bool]:
        """Which states of the tree this shard checks (`checked`) or walks through: the
        subtrees under the states at depth ``shard_depth`` are dealt out in turn; the states
        above them are checked by shard 0, and walked through by every shard on its way
        down (each state is checked by exactly one shard)."""
        index, count = self.shard
        depth = self.shard_depth
        if count == 1:
            return lambda seq, checked: True
        level: list[tuple[Action, ...]] = [()]
        for _ in range(depth):
            level = [(*seq, act) for seq in level for act in children.get(seq, ())]
        dealt = {seq: n % count for n, seq in enumerate(level)}
        on_the_way = {
            seq[:k] for seq, owner in dealt.items() if owner == index for k in range(depth)
        }

        def mine(seq: tuple[Action, ...], checked: bool) -> bool:
            if len(seq) >= depth:
                return dealt[seq[:depth]] == index
            return index == 0 or (not checked and seq in on_the_way)

        return mine

    def run_random(self, walks: int, length: int, seed: int) -> Stats:
        """`walks` random sequences of `length` applied actions (deeper than the tree),
        each from its own seed (so a shard walks its share of the same walks)."""
        start, cpu = time.monotonic(), time.process_time()
        index, count = self.shard
        self.stats.walk_length, self.stats.seed = length, seed
        for n in range(walks):
            if n % count != index:
                continue
            rng = random.Random(f"{seed}/{n}")
            self.stats.random_walks += 1
            with rolled_back():
                s, ctx, seq = initial(), Ctx(), ()
                self.visit(s, ctx, seq)
                for _ in range(length):
                    ok = [act for act in actions(s) if apply(s, act).ok]
                    if not ok:
                        break
                    act = rng.choice(ok)
                    s, ctx, seq = self.step(s, ctx, seq, act)
                    self.visit(s, ctx, seq)
        self.stats.seconds += time.monotonic() - start
        self.stats.cpu_seconds += time.process_time() - cpu
        return self.stats


def _about(about: tuple[str, int] | None) -> tuple[str | None, int | None]:
    return about if about else (None, None)


def _same_reach(
    seq: tuple[Action, ...],
    what: str,
    want: frozenset[tuple[str, str]],
    got: frozenset[tuple[str, str]],
) -> None:
    """The app's reach equals the model's, or a disagreement naming the first missing
    and the first extra (rule or kind, item)."""
    if got != want:
        raise Disagreement(seq, what, _first(want - got, "missing"), _first(got - want, "extra"))


def _first(found: frozenset[tuple[str, str]], label: str) -> str:
    if not found:
        return "-"
    rule, item = sorted(found)[0]
    return f"{label} {rule}{f' ({item})' if item else ''}"


def _no_server_error(response: Any, route: Route, seq: tuple[Action, ...], what: str) -> None:
    status = response.status_code
    if status >= 500 and f"status {status}" not in PLACEHOLDER_ROUTES.get(route.name, ()):
        raise Disagreement(seq, f"{what} (HTTP)", "an answer", f"a server error ({status})")


def _reached(response: Any, url: str, route: Route) -> bool:
    """Did the policy let the request through to the page? (Redirects to the login,
    account choice or "access removed" pages, 403 and 404 are refusals.)"""
    status = response.status_code
    if status in (403, 404):
        return "not_found" in PLACEHOLDER_ROUTES.get(route.name, ()) and status == 404
    if status in (301, 302, 303):
        location = response["Location"]
        for name in ("login", "select_account", "access_removed"):
            if location.startswith(reverse(f"accounts:{name}")):
                return False
        return True
    return True


@contextmanager
def _quiet_requests() -> Iterator[None]:
    """Refusals are the point of the HTTP sample: Django's warning per 403 and 404 is
    left out (errors still show)."""
    logger = logging.getLogger("django.request")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def _route_checks() -> Iterator[list[bool]]:
    """Record whether TokenPermission let each API request through (one entry per
    request: the last answer of its check)."""
    from clientarea.api.access import TokenPermission

    passed: list[bool] = [False]
    original = TokenPermission.has_permission

    def recorded(self: Any, request: Any, view: Any) -> bool:
        answer = original(self, request, view)
        passed[:] = [answer]
        return answer

    TokenPermission.has_permission = recorded
    try:
        yield passed
    finally:
        TokenPermission.has_permission = original


@contextmanager
def checker(
    *,
    http: bool = True,
    http_routes: Callable[[Route], bool] | None = None,
    shard: tuple[int, int] = (0, 1),
) -> Iterator[Checker]:
    """A world at the model's start, on a frozen clock, and a checker for it (inside the
    caller's database transaction: a test's, or the runner's). `http_routes` narrows the
    HTTP sample to some routes (the mutation checks: those a fault is about)."""
    with time_machine.travel(BASE, tick=False) as clock:
        world = World()
        yield Checker(world, clock, http=http, http_routes=http_routes, shard=shard)
