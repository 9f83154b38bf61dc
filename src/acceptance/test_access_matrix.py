"""Every route, every kind of actor, own / another account's object: the exact outcome.

Generated from the access table. One world — account A with its owner and sub-accounts,
account B with its own, every actor logged in — is built once and shared by the cases
(``matrix_world``, acceptance/conftest.py), inside a transaction rolled back after them.
Each (route, method, object owner) case runs in a savepoint of its own (the test's, rolled
back) with every browser's cookies as they were when the world was built, and makes each
actor's request inside one more savepoint that is rolled back, so what one actor's POST
changes never leaks into the next actor's request, nor one case's into the next. POSTs go
through a client with CSRF enforcement on and a valid token, so a 403 means the policy
refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from acceptance.objects import (
    ACCOUNT_WIDE_OBJECTS,
    ALSO_NEEDS,
    IN_SCOPE_ALSO_NEEDS,
    IN_SCOPE_KWARGS,
    OBJECT_KWARGS,
    OWNERS_OBJECT_ROUTES,
    PLACEHOLDER_ROUTES,
    SCOPED_ROUTES,
    STATIC_KWARGS,
)
from clientarea.access_table import ROUTES, Route
from clientarea.accounts import permissions
from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.policy import AccessRule, RuleKind
from clientarea.accounts.services import membership_revoke
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory, UserFactory
from clientarea.domains.models import Domain
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting.models import Service
from clientarea.hosting.tests.factories import ServiceFactory

CSRF = "x" * 32  # an unmasked CSRF secret: valid as both cookie and form token

ACTORS: tuple[str, ...] = (
    "anonymous",
    "owner",
    *(f"only:{p.code.value}" for p in permissions.CATALOGUE),
    "all",
    "none",
    "revoked",
    "expired",
    "other_member",
    "staff",
    # All Permissions, limited to chosen items (resource scope): one service of A; one
    # domain of A; a service of A that was then moved to B (the scope is left empty).
    "scoped:service",
    "scoped:domain",
    "scoped:moved",
)
# The kind of item each scoped actor reaches (the moved one reaches nothing).
SCOPED_KIND = {"scoped:service": "service", "scoped:domain": "domain", "scoped:moved": None}


@dataclass
class World:
    a: Account
    b: Account
    users: dict[str, User]
    sessions: dict[str, Client]
    service: Service  # of A, in scoped:service's scope
    domain: Domain  # of A, in scoped:domain's scope


def build_world() -> World:
    a: Account = AccountFactory(company_name="Account A")
    b: Account = AccountFactory(company_name="Account B")
    users: dict[str, User] = {"owner": a.owner}
    for p in permissions.CATALOGUE:
        users[f"only:{p.code.value}"] = MembershipFactory(
            account=a, permissions=[p.code.value]
        ).user
    users["all"] = MembershipFactory(account=a, permissions=sorted(permissions.ALL_CODES)).user
    users["none"] = MembershipFactory(account=a, permissions=[]).user
    revoked = MembershipFactory(account=a, permissions=sorted(permissions.ALL_CODES))
    users["revoked"] = revoked.user
    users["expired"] = MembershipFactory(
        account=a,
        permissions=sorted(permissions.ALL_CODES),
        expires_at=timezone.now() - timedelta(hours=1),
    ).user
    users["other_member"] = MembershipFactory(
        account=b, permissions=sorted(permissions.ALL_CODES)
    ).user
    users["staff"] = UserFactory(is_staff=True)
    every = sorted(permissions.ALL_CODES)
    service: Service = ServiceFactory(account=a)
    domain: Domain = DomainFactory(account=a)
    moved: Service = ServiceFactory(account=a)
    for actor, scope in (
        ("scoped:service", {"service": [service.pk], "domain": []}),
        ("scoped:domain", {"service": [], "domain": [domain.pk]}),
        ("scoped:moved", {"service": [moved.pk], "domain": []}),
    ):
        users[actor] = MembershipFactory(account=a, permissions=every, scope=scope).user
    sessions: dict[str, Client] = {}
    for actor in ACTORS:
        client = Client(enforce_csrf_checks=True)
        client.cookies["csrftoken"] = CSRF
        if actor != "anonymous":
            client.force_login(users[actor])
            session = client.session
            if actor == "other_member":
                session["current_account_id"] = b.pk
            elif actor != "staff":
                session["current_account_id"] = a.pk
            session.save()
        sessions[actor] = client
    # The revoked actor's session was made while it still had access.
    membership_revoke(membership=revoked, actor=a.owner)
    # The moved service leaves A: it leaves every scope that named it, for good.
    moved.account = b
    moved.save()
    left = Membership.objects.get(account=a, user=users["scoped:moved"]).scope
    assert left == {"service": [], "domain": []}, left
    return World(a, b, users, sessions, service, domain)


def _rule(route: Route) -> AccessRule:
    if route.permission:
        return AccessRule(RuleKind.PERMISSION, route.permission)
    return AccessRule(RuleKind(route.rule))


def expected(route: Route, actor: str, target: str) -> str:
    if route.rule.startswith("token"):
        # The API: a session, whoever's, never authenticates it (tokens: clientarea.api).
        return "unauthorized"
    rule = _rule(route)
    if rule.kind is RuleKind.PUBLIC:
        return "ok"
    if actor == "anonymous":
        return "login"
    if rule.kind is RuleKind.LOGIN:
        return "ok"
    if actor == "staff":
        return "select_account"
    if actor in ("revoked", "expired"):
        return "access_removed"
    if actor == "owner":
        allowed = True
    elif actor.startswith("only:"):
        allowed = rule.kind is RuleKind.ACCOUNT or (
            rule.kind is RuleKind.PERMISSION
            and rule.permission in permissions.expand([actor.removeprefix("only:")])
        )
    elif actor == "none":
        allowed = rule.kind is RuleKind.ACCOUNT
    else:  # all, other_member, scoped:*: every permission, never the owner
        allowed = rule.kind is not RuleKind.OWNER
    if not allowed:
        return "forbidden"
    home = "B" if actor == "other_member" else "A"
    if route.object_param and target.removesuffix("-in") != home:
        return "not_found"
    if route.name in OWNERS_OBJECT_ROUTES and actor != "owner":
        return "not_found"  # the object is the owner's own (their API token)
    also = IN_SCOPE_ALSO_NEEDS.get(route.name) if target == "A-in" else None
    also = also or ALSO_NEEDS.get(route.name)
    only = actor.removeprefix("only:") if actor.startswith("only:") else None
    if also and only and also not in permissions.expand([only]):
        return "not_found"
    if actor in SCOPED_KIND and route.name in SCOPED_ROUTES:
        # The scope is the rule: an object about an item of the actor's scope is theirs;
        # any other object of A is a 404 like B's, unless it is account-wide.
        if target == "A-in":
            return "ok" if SCOPED_ROUTES[route.name] == SCOPED_KIND[actor] else "not_found"
        return "ok" if route.name in ACCOUNT_WIDE_OBJECTS else "not_found"
    return "ok"


def outcome(response: Any, url: str) -> str:
    status = response.status_code
    if status == 401:
        return "unauthorized"
    if status == 404:
        return "not_found"
    if status == 403:
        return "forbidden"
    if status in (301, 302, 303):
        location = response["Location"]
        if location.split("?")[0] == url:
            return "ok"  # post/redirect/get back to the same page (e.g. a form message)
        if location.startswith(reverse("accounts:login")):
            return "login"
        if location.startswith(reverse("accounts:select_account")):
            return "select_account"
        if location.startswith(reverse("accounts:access_removed")):
            return "access_removed"
        return "ok"
    if 200 <= status < 300:
        return "ok"
    return f"status {status}"


def cases() -> list[Any]:
    out = []
    for route in ROUTES:
        targets: tuple[str, ...] = ("A", "B") if route.object_param else ("-",)
        if route.name in SCOPED_ROUTES:
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
        kwargs.update(IN_SCOPE_KWARGS[route.name](world.a, world.service, world.domain))
    elif route.object_param:
        maker: Callable[[Account], dict[str, Any]] = OBJECT_KWARGS[route.name]
        kwargs.update(maker(world.a if target == "A" else world.b))
    return reverse(route.name, kwargs=kwargs or None)


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "method", "target"), cases())
def test_access_matrix(
    route: Route, method: str, target: str, settings: Any, matrix_world: World
) -> None:
    settings.DEMO_MODE = True  # the demo-only pages exist (and are checked) too
    world = matrix_world
    url = url_for(route, world, target)
    failures = []
    for actor in ACTORS:
        # Rolled back after each actor. Marked as a test's own block, as Django marks the
        # one around each test: a request in it is outside any transaction of the app's,
        # as in production, so the panel may be called (the outside-call rule).
        rollback = transaction.atomic()
        rollback._from_testcase = True
        with rollback:
            client = world.sessions[actor]
            if method == "GET":
                response = client.get(url)
            elif method == "POST":
                response = client.post(url, {"csrfmiddlewaretoken": CSRF})
            else:  # the API's PUTs: a session never authenticates them
                response = client.generic(method, url)
            got, want = outcome(response, url), expected(route, actor, target)
            if route.is_public and got == "login":
                got = "ok"  # e.g. logout sends everyone to the login page
            if got in PLACEHOLDER_ROUTES.get(route.name, ()):
                got = "ok"
            if got != want:
                failures.append(f"{actor}: expected {want}, got {got} ({response.status_code})")
            transaction.set_rollback(True)
    assert failures == [], f"{method} {url}"


def test_every_scopable_object_route_is_tested_in_and_out_of_scope() -> None:
    """Every object route of the hosting and domains apps, and of tickets, is limited by
    a resource scope: a new one must be added to SCOPED_ROUTES (and so tested)."""
    scopable = {
        r.name
        for r in ROUTES
        if r.object_param and r.name.split(":")[0] in ("hosting", "domains", "support")
    }
    assert scopable <= set(SCOPED_ROUTES)


def test_every_object_route_has_an_object_maker() -> None:
    missing = [r.name for r in ROUTES if r.object_param and r.name not in OBJECT_KWARGS]
    assert missing == []
