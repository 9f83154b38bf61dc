"""Services and domains over the API: the same selectors, lookups and service functions as
the pages, from the attacker's side. Every endpoint, for own / another account's /
out-of-scope objects, with a token with and without the permission, a token whose creator
lost the permission after it was made, and a revoked token; what the writes do (audit,
owner alert, no-store, the panel's and registry's words, 409 while a change is pending);
and list query counts that do not grow."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import MembershipFactory
from clientarea.api.models import ApiToken
from clientarea.api.services import token_revoke
from clientarea.audit.models import AuditEvent
from clientarea.core.outside import pending_change_begin
from clientarea.domains import services as domain_services
from clientarea.domains.models import Domain
from clientarea.domains.tests.factories import DomainFactory
from clientarea.hosting import services as hosting_services
from clientarea.hosting.models import Service
from clientarea.hosting.tests.factories import SERVICE_PASSWORD, ServiceFactory
from clientarea.notifications.models import OutboxEmail

from .helpers import assert_problem, make_token

pytestmark = pytest.mark.django_db
NEW_PASSWORD = "Granite-Kettle-Orbit-Lantern-71"
NEW_NS = ["ns1.newdns.example", "ns2.newdns.example"]


def call(secret: str | None, method: str, path: str, body: Any = None) -> Any:
    extra: dict[str, Any] = {}
    if secret is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
    data = json.dumps(body) if body is not None else ""
    return Client().generic(method, path, data, content_type="application/json", **extra)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with {id}
    kind: str  # "service" or "domain"
    permission: str
    lacking: str  # a permission that does not imply `permission`
    body: Any = None
    ok: tuple[int, ...] = (200,)


ENDPOINTS = {
    "service_read": Endpoint("GET", "/api/v1/services/{id}", "service", "products", "domains"),
    "password_reveal": Endpoint(
        "POST", "/api/v1/services/{id}/password/reveal", "service", "manageproducts", "products"
    ),
    "password_change": Endpoint(
        "POST",
        "/api/v1/services/{id}/password",
        "service",
        "manageproducts",
        "products",
        {"password": NEW_PASSWORD},
    ),
    "domain_read": Endpoint("GET", "/api/v1/domains/{id}", "domain", "domains", "products"),
    "nameservers": Endpoint(
        "PUT",
        "/api/v1/domains/{id}/nameservers",
        "domain",
        "managedomains",
        "domains",
        {"nameservers": NEW_NS},
    ),
    "lock": Endpoint(
        "PUT", "/api/v1/domains/{id}/lock", "domain", "managedomains", "domains", {"locked": True}
    ),
    "auto_renew": Endpoint(
        "PUT",
        "/api/v1/domains/{id}/auto-renew",
        "domain",
        "managedomains",
        "domains",
        {"enabled": False},
    ),
}


@dataclass
class World:
    account: Account
    other: Account
    objects: dict[str, dict[str, Any]]  # kind -> own / other / out


def _world(account: Account, other_account: Account) -> World:
    def service(acc: Account) -> Service:
        return ServiceFactory(account=acc)

    def domain(acc: Account) -> Domain:
        return DomainFactory(account=acc, registrar_lock=False, auto_renew=True)

    objects: dict[str, dict[str, Any]] = {
        "service": {"own": service(account), "other": service(other_account)},
        "domain": {"own": domain(account), "other": domain(other_account)},
    }
    objects["service"]["out"] = service(account)
    objects["domain"]["out"] = domain(account)
    return World(account, other_account, objects)


def _scoped_to_own(world: World) -> dict[str, list[int]]:
    return {
        "service": [world.objects["service"]["own"].pk],
        "domain": [world.objects["domain"]["own"].pk],
    }


def _unchanged(world: World, panel: Any, registrar: Any) -> None:
    for kind in ("service", "domain"):
        for obj in world.objects[kind].values():
            fresh = type(obj).objects.get(pk=obj.pk)
            if kind == "service":
                assert fresh.decrypt_password() == SERVICE_PASSWORD
            else:
                assert (fresh.nameservers, fresh.registrar_lock, fresh.auto_renew) == (
                    obj.nameservers,
                    False,
                    True,
                )
    assert panel.calls == [] and registrar.calls == []
    assert not AuditEvent.objects.filter(action__regex=r"^(service|domain)\.").exists()


CASES = ["own", "other", "out"]


@pytest.mark.parametrize("target", CASES)
@pytest.mark.parametrize("name", ENDPOINTS)
def test_each_endpoint_own_other_and_out_of_scope_with_the_permission(
    name: str,
    target: str,
    account: Account,
    other_account: Account,
    panel: Any,
    registrar: Any,
) -> None:
    endpoint = ENDPOINTS[name]
    world = _world(account, other_account)
    # A sub-account holding the permission, its token scoped to the own items only.
    member = MembershipFactory(
        account=account, permissions=[endpoint.permission], scope=_scoped_to_own(world)
    )
    _, secret = make_token(account, member.user, codes=[endpoint.permission])
    obj = world.objects[endpoint.kind][target]
    response = call(secret, endpoint.method, endpoint.path.format(id=obj.pk), endpoint.body)
    if target == "own":
        assert response.status_code in endpoint.ok, response.content[:300]
        assert response.json()
        return
    body = assert_problem(response, 404)
    assert body["detail"] == "No such object, or not one this token can reach."
    _unchanged(world, panel, registrar)


@pytest.mark.parametrize("target", CASES)
@pytest.mark.parametrize("name", ENDPOINTS)
def test_each_endpoint_refuses_a_token_without_the_permission(
    name: str,
    target: str,
    account: Account,
    other_account: Account,
    panel: Any,
    registrar: Any,
) -> None:
    endpoint = ENDPOINTS[name]
    world = _world(account, other_account)
    # The owner's token, carrying a permission that does not include this one.
    _, secret = make_token(account, codes=[endpoint.lacking, "invoices"])
    obj = world.objects[endpoint.kind][target]
    response = call(secret, endpoint.method, endpoint.path.format(id=obj.pk), endpoint.body)
    body = assert_problem(response, 403, "permission_missing")
    assert f"({endpoint.permission})" in body["detail"]
    _unchanged(world, panel, registrar)


@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_token_whose_creator_lost_the_permission_carries_the_intersection(
    name: str, account: Account, other_account: Account, panel: Any, registrar: Any
) -> None:
    endpoint = ENDPOINTS[name]
    world = _world(account, other_account)
    member = MembershipFactory(account=account, permissions=[endpoint.permission])
    _, secret = make_token(account, member.user, codes=[endpoint.permission])
    # The owner narrows the grant after the token was made: the token keeps its own
    # columns, but carries only what its creator still holds.
    Membership.objects.filter(pk=member.pk).update(permissions=[endpoint.lacking])
    obj = world.objects[endpoint.kind]["own"]
    response = call(secret, endpoint.method, endpoint.path.format(id=obj.pk), endpoint.body)
    assert_problem(response, 403, "permission_missing")
    # ... and narrowing the creator's scope narrows the token's reach: a 404.
    Membership.objects.filter(pk=member.pk).update(
        permissions=[endpoint.permission], scope={"service": [], "domain": []}
    )
    response = call(secret, endpoint.method, endpoint.path.format(id=obj.pk), endpoint.body)
    assert_problem(response, 404)
    _unchanged(world, panel, registrar)


@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_revoked_token_is_a_401(
    name: str, account: Account, other_account: Account, panel: Any, registrar: Any
) -> None:
    endpoint = ENDPOINTS[name]
    world = _world(account, other_account)
    token, secret = make_token(account, codes=[endpoint.permission])
    token_revoke(token=token, actor=account.owner)
    obj = world.objects[endpoint.kind]["own"]
    response = call(secret, endpoint.method, endpoint.path.format(id=obj.pk), endpoint.body)
    assert_problem(response, 401, "token_revoked")
    _unchanged(world, panel, registrar)


def test_a_session_never_authenticates_these_endpoints(
    account: Account, login_client: Callable[..., Client], panel: Any
) -> None:
    service = ServiceFactory(account=account)
    client = login_client(account.owner, account)
    response = client.post(f"/api/v1/services/{service.pk}/password/reveal")
    assert_problem(response, 401)
    assert not AuditEvent.objects.filter(action="service.password_revealed").exists()


# --- lists -----------------------------------------------------------------------------------


def test_lists_show_only_the_tokens_reach_in_id_order_and_filter(
    account: Account, other_account: Account
) -> None:
    mine = [ServiceFactory(account=account) for _ in range(3)]
    ServiceFactory(account=other_account)
    Service.objects.filter(pk=mine[1].pk).update(status="suspended")
    domains = [DomainFactory(account=account) for _ in range(3)]
    DomainFactory(account=other_account)
    _, secret = make_token(account, codes=["products", "domains"])
    listed = call(secret, "GET", "/api/v1/services").json()
    assert [r["id"] for r in listed["results"]] == [s.pk for s in mine]
    assert all("password" not in r and r["password_stored"] for r in listed["results"])
    assert SERVICE_PASSWORD not in json.dumps(listed)
    suspended = call(secret, "GET", "/api/v1/services?status=suspended").json()["results"]
    assert [r["id"] for r in suspended] == [mine[1].pk]
    assert_problem(call(secret, "GET", "/api/v1/services?status=nope"), 400, "invalid")
    page = call(secret, "GET", "/api/v1/domains?page_size=2").json()
    assert [r["id"] for r in page["results"]] == [d.pk for d in domains[:2]]
    rest = Client().get(page["next"], HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    assert [r["id"] for r in rest["results"]] == [domains[2].pk]
    # A token scoped to one service and one domain lists only those.
    member = MembershipFactory(
        account=account,
        permissions=["products", "domains"],
        scope={"service": [mine[2].pk], "domain": [domains[0].pk]},
    )
    _, scoped = make_token(account, member.user, codes=["products", "domains"])
    assert [r["id"] for r in call(scoped, "GET", "/api/v1/services").json()["results"]] == [
        mine[2].pk
    ]
    assert [r["id"] for r in call(scoped, "GET", "/api/v1/domains").json()["results"]] == [
        domains[0].pk
    ]


def _list_queries(secret: str, path: str, make: Callable[[], object], model: Any, n: int) -> int:
    while model.objects.count() < n:
        make()
    with CaptureQueriesContext(connection) as queries:
        response = call(secret, "GET", f"{path}?page_size=100")
    assert response.status_code == 200 and len(response.json()["results"]) == n
    return len(queries)


@pytest.mark.parametrize("path", ["/api/v1/services", "/api/v1/domains"])
def test_list_query_count_does_not_grow(account: Account, path: str) -> None:
    if path.endswith("services"):
        model: Any = Service

        def make() -> object:
            return ServiceFactory(account=account)
    else:
        model = Domain

        def make() -> object:
            return DomainFactory(account=account)

    _, secret = make_token(account, codes=["products", "domains"])
    call(secret, "GET", path)  # the last use is written once a minute: not in the counts
    assert _list_queries(secret, path, make, model, 10) == _list_queries(
        secret, path, make, model, 50
    )


# --- what the writes do ----------------------------------------------------------------------


def test_reveal_is_no_store_audited_and_alerts_the_owner_as_the_page_does(
    account: Account, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    member = MembershipFactory(account=account, permissions=["manageproducts"])
    _, secret = make_token(account, member.user, codes=["manageproducts"])
    OutboxEmail.objects.all().delete()
    response = call(secret, "POST", f"/api/v1/services/{service.pk}/password/reveal")
    assert response.status_code == 200
    assert response.json() == {"password": SERVICE_PASSWORD}
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action="service.password_revealed")
    assert event.actor == member.user and event.target_id == str(service.pk)
    alert = OutboxEmail.objects.get()
    assert alert.to_email == account.owner.email and alert.kind == "security"
    assert SERVICE_PASSWORD not in alert.body_text


def test_password_change_goes_through_the_panel_and_its_refusal_is_a_400(
    account: Account, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    _, secret = make_token(account, codes=["manageproducts"])
    path = f"/api/v1/services/{service.pk}/password"
    panel.refuse = "The panel refuses: this password was used before."
    body = assert_problem(call(secret, "POST", path, {"password": NEW_PASSWORD}), 400, "invalid")
    assert body["errors"] == {"password": [panel.refuse]}
    weak = assert_problem(call(secret, "POST", path, {"password": "short"}), 400, "invalid")
    assert "password" in weak["errors"]
    assert_problem(call(secret, "POST", path, {}), 400, "invalid")
    assert_problem(call(secret, "POST", path, {"password": ["x"]}), 400, "invalid")
    panel.refuse = ""
    panel.unavailable = True
    down = call(secret, "POST", path, {"password": NEW_PASSWORD})
    assert_problem(down, 503, "unavailable")
    assert down["Retry-After"]
    panel.unavailable = False
    assert Service.objects.get(pk=service.pk).decrypt_password() == SERVICE_PASSWORD
    done = call(secret, "POST", path, {"password": NEW_PASSWORD})
    assert done.status_code == 200 and done.json()["status"] == "done"
    assert Service.objects.get(pk=service.pk).decrypt_password() == NEW_PASSWORD
    assert AuditEvent.objects.filter(action="service.password_changed").count() == 1
    # No answer from the panel: 202, pending, shown on the service.
    panel.uncertain = 99
    pending = call(secret, "POST", path, {"password": NEW_PASSWORD + "x"})
    assert pending.status_code == 202 and pending.json()["status"] == "pending"
    _, reader = make_token(account, codes=["products"])
    shown = call(reader, "GET", f"/api/v1/services/{service.pk}").json()
    assert shown["pending_change"]["what"] == "password change"


def test_password_change_is_a_409_while_another_change_is_pending(
    account: Account, panel: Any
) -> None:
    service = ServiceFactory(account=account)
    pending_change_begin(
        operation=hosting_services.SUSPEND,
        target=f"hosting.service:{service.pk}",
        account=account,
        actor=None,
        params={},
    )
    _, secret = make_token(account, codes=["manageproducts"])
    response = call(
        secret, "POST", f"/api/v1/services/{service.pk}/password", {"password": NEW_PASSWORD}
    )
    body = assert_problem(response, 409, "change_pending")
    assert "still waiting for the control panel" in body["detail"]
    assert panel.calls == []


def test_domain_setters_go_to_the_registry_and_say_what_the_page_says(
    account: Account, registrar: Any
) -> None:
    domain = DomainFactory(account=account, registrar_lock=False, auto_renew=True)
    _, secret = make_token(account, codes=["managedomains"])
    base = f"/api/v1/domains/{domain.pk}"
    done = call(secret, "PUT", f"{base}/nameservers", {"nameservers": NEW_NS})
    assert done.status_code == 200 and done.json()["nameservers"] == NEW_NS
    bad = call(secret, "PUT", f"{base}/nameservers", {"nameservers": ["ns1.ok.example", "-x-"]})
    body = assert_problem(bad, 400, "invalid")
    assert body["errors"]["nameservers"][0].startswith("Nameserver 2:")
    assert_problem(call(secret, "PUT", f"{base}/lock", {"locked": "maybe"}), 400, "invalid")
    assert_problem(call(secret, "PUT", f"{base}/auto-renew", {}), 400, "invalid")
    registrar.refuse = "Object status prohibits operation (serverUpdateProhibited)."
    refused = assert_problem(call(secret, "PUT", f"{base}/lock", {"locked": True}), 400, "refused")
    assert refused["detail"] == registrar.refuse
    registrar.refuse = ""
    locked = call(secret, "PUT", f"{base}/lock", {"locked": True})
    assert locked.status_code == 200 and locked.json()["registrar_lock"] is True
    renew = call(secret, "PUT", f"{base}/auto-renew", {"enabled": False})
    assert renew.status_code == 200 and renew.json()["auto_renew"] is False
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "domain.nameservers_changed",
        "domain.registrar_lock_changed",
        "domain.auto_renew_changed",
    } <= actions
    # Unanswered: 202 with the change pending; then 409 until the registry settles it.
    registrar.uncertain = 99
    pending = call(secret, "PUT", f"{base}/lock", {"locked": False})
    assert pending.status_code == 202
    assert pending.json()["pending_change"]["what"] == "registrar lock change"
    conflict = assert_problem(
        call(secret, "PUT", f"{base}/nameservers", {"nameservers": NEW_NS[::-1]}),
        409,
        "change_pending",
    )
    assert "still waiting for the registry" in conflict["detail"]
    assert domain_services.domain_pending_change(domain) is not None


def test_a_domain_not_manageable_is_refused_with_the_pages_sentence(
    account: Account, registrar: Any
) -> None:
    domain = DomainFactory(account=account, status=Domain.Status.CANCELLED)
    _, secret = make_token(account, codes=["managedomains"])
    body = assert_problem(
        call(secret, "PUT", f"/api/v1/domains/{domain.pk}/auto-renew", {"enabled": False}),
        400,
        "refused",
    )
    assert body["detail"].endswith("its settings cannot be changed.")
    assert registrar.calls == []


def test_a_token_revoked_while_its_request_runs_changes_nothing(
    account: Account, registrar: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service asks the token again (TokenGrant.current): a token revoked between
    authentication and the change reaches nothing."""
    domain = DomainFactory(account=account, registrar_lock=False)
    token, secret = make_token(account, codes=["managedomains"])
    real = domain_services._lock_manageable

    def revoke_first(row: Domain, access: Any) -> Domain:
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=token.created_at)
        return real(row, access)

    monkeypatch.setattr(domain_services, "_lock_manageable", revoke_first)
    response = call(secret, "PUT", f"/api/v1/domains/{domain.pk}/lock", {"locked": True})
    assert_problem(response, 404)
    assert registrar.calls == [] and not Domain.objects.get(pk=domain.pk).registrar_lock
