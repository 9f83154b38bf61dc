"""User Management names the services in each person's scope by reading only those
services, however many the account has (bench/bench_scale.py: an account with hundreds
of services and domains read them all on every view of the page)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clientarea.accounts.scope import scope_label_map, scope_to_json

from .factories import ServiceFactory

pytestmark = pytest.mark.django_db


def test_scope_label_map_reads_only_the_named_items(account: Any, other_account: Any) -> None:
    services = [ServiceFactory(account=account) for _ in range(5)]
    stranger = ServiceFactory(account=other_account)
    full = scope_label_map(account)

    named = scope_label_map(
        account, [{"service": frozenset({services[1].pk, services[3].pk, stranger.pk})}, None]
    )

    # The same labels as the whole account's map, for the named items of this account only.
    assert named == {k: full[k] for k in [("service", services[1].pk), ("service", services[3].pk)]}
    assert scope_label_map(account, [None, {"service": frozenset()}]) == {}


def test_user_management_reads_the_scoped_services_only(
    owner: Any, account: Any, member_factory: Any, login_client: Any
) -> None:
    services = [ServiceFactory(account=account) for _ in range(30)]
    chosen = services[7]
    member_factory("products", scope=scope_to_json({"service": [chosen.pk], "domain": []}))
    client = login_client(owner, account)

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/account/users/")

    assert response.status_code == 200
    assert str(chosen) in response.content.decode()
    assert str(services[8]) not in response.content.decode()
    reads = [q["sql"] for q in queries if 'FROM "hosting_service"' in q["sql"]]
    assert reads and all(f"IN ({chosen.pk})" in sql for sql in reads), reads
