"""Email History's page count reads the (account, created_at, ...) index alone: every
column the reader's filter uses is in it, for the owner, a sub-account and a sub-account
limited to chosen items (bench/bench_scale.py: 22,000 emails scattered through the table
took 0.7 s to count from the table, 40 ms from the index)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.policy import access_for
from clientarea.accounts.scope import scope_to_json
from clientarea.notifications.models import OutboxEmail
from clientarea.notifications.selectors import email_history_for

pytestmark = pytest.mark.django_db
TABLE = OutboxEmail._meta.db_table


def _index_columns() -> list[str]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    return constraints["notifications_history"]["columns"]


def test_the_index_leads_with_the_account_and_time() -> None:
    assert _index_columns()[:2] == ["account_id", "created_at"]


@pytest.mark.parametrize("who", ["owner", "member", "scoped member"])
def test_the_count_filters_on_indexed_columns_only(
    who: str, owner: User, account: Account, member_factory: Callable[..., Membership]
) -> None:
    user = owner
    if who != "owner":
        scope = scope_to_json({"service": [1], "domain": [2]}) if who == "scoped member" else None
        user = member_factory("emails", "products", "domains", "tickets", scope=scope).user
    access = access_for(user, account.pk)
    assert access is not None

    with CaptureQueriesContext(connection) as queries:
        email_history_for(access).count()

    (sql,) = [q["sql"] for q in queries if "COUNT(" in q["sql"]]
    read = set(re.findall(rf'"{TABLE}"\."(\w+)"', sql))
    assert read and read <= set(_index_columns()), read - set(_index_columns())
