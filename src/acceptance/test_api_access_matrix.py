"""Every API endpoint, every kind of token, own / another account's / in-scope object: the
exact outcome.

Generated from the route table (every ``api:`` route but the public schema and docs), so
an endpoint is covered as soon as its row lands; one whose row has no object maker fails
``test_every_api_object_route_has_an_object_maker``. One world — account A (whose
ownership moved once, so a token of its former owner exists), its sub-accounts and their
tokens, account B and its owner's token — is built once and shared by the cases, inside a
transaction rolled back after them. Each (route, method, target) case runs in a savepoint
of its own (the test's, rolled back) and, for every token actor, sends the request inside
one more savepoint that is rolled back, so what one actor's call changes never leaks into
the next actor's, nor one case's into the next.

The request carries an empty body (``application/json``): the matrix asks whether the
policy lets a request through, not whether the body is right. So an answer the policy
allowed is "reached" (2xx, or the view's own 400 / 402 / 409 / 503), a refused one is
401 (no or dead token), 403 (not carried) or 404 (another account's, or out of scope).
The views look the object up before they read the body, so a 400 never hides a 404.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLResolver, get_resolver, reverse
from django.utils import timezone

from acceptance.objects import (
    ACCOUNT_WIDE_OBJECTS,
    ALSO_NEEDS,
    IN_SCOPE_ALSO_NEEDS,
    IN_SCOPE_KWARGS,
    OBJECT_KWARGS,
    SCOPED_ROUTES,
    STATIC_KWARGS,
)
from clientarea.access_table import ROUTES, Route
from clientarea.accounts import permissions
from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.ownership import ownership_transfer_accept, ownership_transfer_start
from clientarea.accounts.services import membership_revoke, membership_update
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory, UserFactory
from clientarea.api.models import ApiToken
from clientarea.api.services import token_create, token_revoke
from clientarea.domains.models import Domain
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.models import Service
from clientarea.hosting.tests.factories import ServiceFactory
from clientarea.notifications.models import OutboxEmail
from clientarea.security.models import AccountSecurity

# The API's own description: public, no account data (tested in the API's schema tests).
NOT_TOKEN_ROUTES = {"api:schema", "api:docs"}
API_ROUTES: tuple[Route, ...] = tuple(
    r for r in ROUTES if r.is_api and r.name not in NOT_TOKEN_ROUTES
)
EVERY = sorted(permissions.ALL_CODES)
# Does a token carry the owner's Users power ("manages_users")? Only once tokens have it.
TOKENS_MANAGE_USERS = "manages_users" in inspect.signature(token_create).parameters

ACTORS: tuple[str, ...] = (
    "no_token",
    # The owner's tokens: All Permissions; each single permission of the catalogue (with
    # what it implies); All Permissions and the Users power (for `token:owner` rows).
    "owner",
    *(f"owner:{p.code.value}" for p in permissions.CATALOGUE),
    "owner:manages_users",
    # A sub-account with All Permissions, and its token carrying them all.
    "member",
    # Scoped: a token limited to one service of A (its creator is not); a token of a
    # sub-account limited to one domain of A (the token inherits its creator's scope).
    "scoped:service",
    "scoped:domain",
    # Dead tokens: 401 whatever they carry.
    "expired",
    "revoked",
    "creator_revoked",
    "ownership_moved",  # made by A's owner, who then handed A over (and stayed, with All)
    "network",  # its allowed networks exclude the test client's address
    # Its account (a third one) requires two-factor, which its creator (the owner) has off.
    "two_factor_off",
    # Made carrying invoices and tickets; its creator now holds tickets alone.
    "reduced",
    # B's owner's token, All Permissions: B's objects are its own.
    "other_account",
)
# The token kinds the issue's proof names, and the actor of each.
ISSUE_KINDS = {
    "no token": "no_token",
    "owner": "owner",
    "each single permission": "owner:",
    "sub-account": "member",
    "scoped": "scoped:",
    "expired": "expired",
    "revoked": "revoked",
    "creator revoked": "creator_revoked",
    "creator's permissions reduced": "reduced",
    "ownership moved": "ownership_moved",
    "another account": "other_account",
    "allowed networks": "network",
    "two-factor required, creator without it": "two_factor_off",
    "owner's token with the Users power": "owner:manages_users",
}
DEAD = {
    "no_token",
    "expired",
    "revoked",
    "creator_revoked",
    "ownership_moved",
    "network",
    "two_factor_off",
}
SCOPED_KIND = {"scoped:service": "service", "scoped:domain": "domain"}
# What each live token carries, intersected with its creator's grant (before scope).
CARRIED: dict[str, frozenset[str]] = {
    "owner": permissions.ALL_CODES,
    **{f"owner:{c}": permissions.expand([c]) for c in EVERY},
    "owner:manages_users": permissions.ALL_CODES,
    "member": permissions.ALL_CODES,
    "scoped:service": permissions.ALL_CODES,
    "scoped:domain": permissions.ALL_CODES,
    "reduced": frozenset({"tickets"}),
    "other_account": permissions.ALL_CODES,
}

# --- the API's scopable object routes ------------------------------------------------------
# An API object route about a service, a domain or a ticket (or a ticket's attachment) is
# limited by a resource scope, as its page is. objects.SCOPED_ROUTES / IN_SCOPE_KWARGS may
# name it (then they are used); otherwise the kind is read from the route's URL pattern and
# the in-scope object is made here. An email of Email History is as on its page: the one
# OBJECT_KWARGS makes is a general email (account-wide: a scoped token reads it); the
# in-scope one is a product email about the scoped service, read only with products too.
PATH_KINDS = (("tickets", "ticket"), ("attachments", "ticket"), ("services", "service"),
              ("domains", "domain"), ("emails", "email"))  # fmt: skip


def _patterns(resolver: Any, prefix: str, namespace: str) -> Any:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if entry.namespace else namespace
            yield from _patterns(entry, prefix + str(entry.pattern), inner.strip(":"))
        elif entry.name:
            yield f"{namespace}:{entry.name}".strip(":"), prefix + str(entry.pattern)


URL_PATTERNS: dict[str, str] = dict(_patterns(get_resolver(), "/", ""))


def _scopable_kind(route: Route) -> str | None:
    if not route.object_param:
        return None
    segments = URL_PATTERNS[route.name].split("/")
    for segment, kind in PATH_KINDS:
        if segment in segments:
            return kind
    return None


def _in_scope_maker(route: Route) -> Callable[[Account, Service, Domain], dict[str, Any]]:
    if route.name in IN_SCOPE_KWARGS:
        return IN_SCOPE_KWARGS[route.name]
    param = route.object_param
    assert param is not None
    kind = _scopable_kind(route)
    if kind == "service":
        return lambda a, s, d: {param: s.pk}
    if kind == "domain":
        return lambda a, s, d: {param: d.pk}
    if kind == "email":
        email = IN_SCOPE_KWARGS["notifications:history_detail"]
        return lambda a, s, d: {param: email(a, s, d)["email_id"]}
    # A ticket about the in-scope service (its attachment's id, for attachment routes).
    ticket_route = "support:attachment_download" if "attachment" in route.name else None
    made = IN_SCOPE_KWARGS[ticket_route or "support:ticket_detail"]
    return lambda a, s, d: {param: made(a, s, d)["pk"]}


def scope_kind_of(route: Route) -> str | None:
    """The kind of item ("service", "domain") the in-scope object of the route is about,
    or None if a scope does not limit the route."""
    if route.name in SCOPED_ROUTES:
        return SCOPED_ROUTES[route.name]
    kind = _scopable_kind(route)
    # The in-scope ticket or email is about a service.
    return "service" if kind in ("ticket", "email") else kind


def account_wide(route: Route) -> bool:
    return route.name in ACCOUNT_WIDE_OBJECTS or _scopable_kind(route) == "email"


def in_scope_also_needs(route: Route) -> str | None:
    also = IN_SCOPE_ALSO_NEEDS.get(route.name)
    return also or ("products" if _scopable_kind(route) == "email" else None)


# --- the world -----------------------------------------------------------------------------


@dataclass
class World:
    a: Account
    b: Account
    secrets: dict[str, str | None]
    tokens: dict[str, ApiToken]
    service: Service  # of A, in scoped:service's scope
    domain: Domain  # of A, in scoped:domain's scope


def _token(account: Account, user: User, codes: list[str], **kwargs: Any) -> tuple[ApiToken, str]:
    return token_create(
        account=account,
        actor=user,
        name="Matrix",
        permission_codes=codes,
        expires_at=timezone.now() + timedelta(days=30),
        **kwargs,
    )


def _hand_over(account: Account, to: User) -> None:
    """The owner offers the account to `to` and they accept; the former owner stays."""
    ownership_transfer_start(
        account=account,
        actor=account.owner,
        to_email=to.email,
        former_owner_stays=True,
        keep_payment_methods=False,
    )
    body = OutboxEmail.objects.filter(to_email=to.email, body_text__contains="/ownership/")
    link = body.latest("pk").body_text.split("/ownership/", 1)[1].split("/", 1)[0]
    ownership_transfer_accept(token=link, user=to)
    account.refresh_from_db()


def build_world() -> World:
    a: Account = AccountFactory(company_name="Account A")
    b: Account = AccountFactory(company_name="Account B")
    made: dict[str, tuple[ApiToken, str]] = {}
    # A's first owner makes a token, then hands A over (staying on with All Permissions).
    made["ownership_moved"] = _token(a, a.owner, EVERY)
    _hand_over(a, UserFactory())
    owner = a.owner
    made["owner"] = _token(a, owner, EVERY)
    for code in EVERY:
        made[f"owner:{code}"] = _token(a, owner, [code])
    extra = {"manages_users": True} if TOKENS_MANAGE_USERS else {}
    made["owner:manages_users"] = _token(a, owner, EVERY, **extra)
    member = MembershipFactory(account=a, permissions=EVERY)
    made["member"] = _token(a, member.user, EVERY)
    service: Service = ServiceFactory(account=a)
    domain: Domain = DomainFactory(account=a)
    made["scoped:service"] = _token(
        a, member.user, EVERY, scope={"service": [service.pk], "domain": []}
    )
    scoped = MembershipFactory(
        account=a, permissions=EVERY, scope={"service": [], "domain": [domain.pk]}
    )
    made["scoped:domain"] = _token(a, scoped.user, EVERY)
    assert made["scoped:domain"][0].scope == {"service": [], "domain": [domain.pk]}
    made["expired"] = _token(a, owner, EVERY)
    ApiToken.objects.filter(pk=made["expired"][0].pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    made["revoked"] = _token(a, member.user, EVERY)
    token_revoke(token=made["revoked"][0], actor=owner)
    gone = MembershipFactory(account=a, permissions=EVERY)
    made["creator_revoked"] = _token(a, gone.user, EVERY)
    membership_revoke(membership=gone, actor=owner)
    made["network"] = _token(a, owner, EVERY, allowed_networks=["203.0.113.0/24"])
    reduced = MembershipFactory(account=a, permissions=["invoices", "tickets"])
    made["reduced"] = _token(a, reduced.user, ["invoices", "tickets"])
    membership_update(
        membership=reduced, actor=owner, permission_codes=["tickets"], expires_at=None
    )
    made["other_account"] = _token(b, b.owner, EVERY)
    c: Account = AccountFactory(company_name="Account C")
    made["two_factor_off"] = _token(c, c.owner, EVERY)
    AccountSecurity.objects.update_or_create(account=c, defaults={"require_two_factor": True})
    secrets: dict[str, str | None] = {"no_token": None}
    secrets.update({actor: secret for actor, (_, secret) in made.items()})
    tokens = {actor: token for actor, (token, _) in made.items()}
    assert set(secrets) == set(ACTORS)
    # The former owner still reaches A, with All Permissions: only its token died.
    assert Membership.objects.get(account=a, user=tokens["ownership_moved"].created_by).is_usable()
    return World(a, b, secrets, tokens, service, domain)


# --- the expected outcome ----------------------------------------------------------------


def may_manage_users(token: ApiToken | None) -> bool:
    """A ``token:owner`` row: a token its creator made as the owner (and still is: else
    the token is dead), carrying the Users power."""
    return (
        token is not None
        and token.created_as_owner
        and bool(getattr(token, "manages_users", False))
    )


def expected(route: Route, actor: str, target: str, token: ApiToken | None) -> str:
    if actor in DEAD:
        return "unauthorized"
    carried = CARRIED[actor]
    if route.rule == "token:owner":
        allowed = may_manage_users(token)
    elif route.rule.startswith("token:"):
        allowed = route.rule.removeprefix("token:") in carried
    else:
        assert route.rule == "token", route
        allowed = True
    if not allowed:
        return "forbidden"
    home = "B" if actor == "other_account" else "A"
    if route.object_param and target.removesuffix("-in") != home:
        return "not_found"
    also = in_scope_also_needs(route) if target == "A-in" else None
    also = also or ALSO_NEEDS.get(route.name)
    if also and also not in carried:
        return "not_found"
    kind = scope_kind_of(route)
    if actor in SCOPED_KIND and kind is not None:
        # The scope is the rule: an object about an item of the token's scope is its own;
        # any other object of A is a 404 like B's, unless it is account-wide.
        if target == "A-in":
            return "reached" if kind == SCOPED_KIND[actor] else "not_found"
        return "reached" if account_wide(route) else "not_found"
    return "reached"


REACHED = {400, 402, 409, 503}


def outcome(response: Any, method: str) -> str:
    """What the answer means for access. A read the policy let through is a 200: no
    body is needed for it, so only a change may answer the view's own refusals."""
    status = response.status_code
    if status == 401:
        return "unauthorized"
    if status == 403:
        return "forbidden"
    if status == 404:
        return "not_found"
    if 200 <= status < 300 or (status in REACHED and method != "GET"):
        return "reached"
    return f"status {status}"


def cases() -> list[Any]:
    out = []
    for route in API_ROUTES:
        targets: tuple[str, ...] = ("A", "B") if route.object_param else ("-",)
        if scope_kind_of(route) is not None:
            targets = (*targets, "A-in")  # an object about an item in a scope
        for method in route.methods:
            for target in targets:
                out.append(
                    pytest.param(route, method, target, id=f"{route.name}-{method}-{target}")
                )
    return out


def url_for(route: Route, world: World, target: str) -> str:
    kwargs: dict[str, Any] = dict(STATIC_KWARGS.get(route.name, {}))
    if target == "A-in":
        kwargs.update(_in_scope_maker(route)(world.a, world.service, world.domain))
    elif route.object_param:
        maker: Callable[[Account], dict[str, Any]] = OBJECT_KWARGS[route.name]
        kwargs.update(maker(world.a if target == "A" else world.b))
    return reverse(route.name, kwargs=kwargs or None)


# The cases share one world, built once (``matrix_world``, acceptance/conftest.py) in a
# transaction rolled back after them; each case runs in a savepoint of its own.
BUILD_WORLD = build_world


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method", "target"), cases())
def test_api_access_matrix(route: Route, method: str, target: str, matrix_world: World) -> None:
    world = matrix_world
    url = url_for(route, world, target)
    client = Client()
    failures = []
    for actor in ACTORS:
        # Rolled back after each actor. Marked as a test's own block, as Django marks the
        # one around each test: a request in it is outside any transaction of the app's,
        # as in production, so the panel or registry may be called (the outside-call rule).
        rollback = transaction.atomic()
        rollback._from_testcase = True
        with rollback:
            secret = world.secrets[actor]
            headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"} if secret else {}
            response = client.generic(method, url, "", content_type="application/json", **headers)
            got = outcome(response, method)
            want = expected(route, actor, target, world.tokens.get(actor))
            if got != want:
                failures.append(
                    f"{actor}: expected {want}, got {got} ({response.status_code} "
                    f"{response.content[:160]!r})"
                )
            transaction.set_rollback(True)
    assert failures == [], f"{method} {url}"


# --- completeness ------------------------------------------------------------------------


def test_every_api_route_is_in_the_matrix() -> None:
    """Every ``api:`` route (but the schema and docs) is a case, with each of its methods,
    and every rule of the table is one the matrix computes an outcome for."""
    covered = {(p.values[0].name, p.values[1]) for p in cases()}
    every = {(r.name, m) for r in ROUTES if r.is_api for m in r.methods}
    assert every - covered == {(r, "GET") for r in NOT_TOKEN_ROUTES}
    for route in API_ROUTES:
        rule = route.rule
        assert rule in ("token", "token:owner") or (
            rule.startswith("token:") and rule.removeprefix("token:") in permissions.BY_CODE
        ), route


def test_every_api_object_route_has_an_object_maker() -> None:
    missing = [r.name for r in API_ROUTES if r.object_param and r.name not in OBJECT_KWARGS]
    assert missing == []


def test_every_scopable_api_route_is_tested_in_and_out_of_scope() -> None:
    """An object route about services, domains or tickets (by its URL) is limited by a
    scope: it has an in-scope object, so scoped tokens are tried on it."""
    targets = {(p.values[0].name, p.values[2]) for p in cases()}
    scopable = [r for r in API_ROUTES if _scopable_kind(r) or r.name in SCOPED_ROUTES]
    assert {r.name for r in scopable} >= {
        "api:service_detail",
        "api:service_password_reveal",
        "api:domain_detail",
        "api:domain_nameservers",
    }
    for route in scopable:
        assert (route.name, "A-in") in targets, route.name


def test_every_token_kind_of_the_issue_is_an_actor() -> None:
    for kind, actor in ISSUE_KINDS.items():
        if actor.endswith(":"):
            found = [a for a in ACTORS if a.startswith(actor)]
            assert found, kind
        else:
            assert actor in ACTORS, kind
    singles = {a.removeprefix("owner:") for a in ACTORS if a.startswith("owner:")}
    assert singles >= permissions.ALL_CODES
    assert set(CARRIED) | DEAD == set(ACTORS)
