"""Queries prepared once per process (core/prepared.py) answer exactly as the queryset
built for each call would, and the request's queries take that path."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Exists, OuterRef, QuerySet, Value
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.middleware import PAGE_ACCESS
from clientarea.accounts.models import Account, Membership, User
from clientarea.accounts.policy import ACCESS_ONLY, AccessQuery, access_for, access_with
from clientarea.accounts.tests.factories import AccountFactory, MembershipFactory, UserFactory
from clientarea.api.services import TOKEN_ACCESS
from clientarea.core.context_processors import SELECTABLE
from clientarea.core.prepared import PreparedQuery
from clientarea.security.models import TrackedSession
from clientarea.security.sessions import SESSION_TRACKING_KEY

pytestmark = pytest.mark.django_db


def _members(account_id: int, since: datetime, name: str) -> QuerySet[Account]:
    """A query with a join, an annotation reading another table and all three kinds."""
    return (
        Account.objects.select_related("owner")
        .annotate(
            busy=Exists(Membership.objects.filter(account=OuterRef("pk"), created_at__gte=since)),
            label=Value("fixed"),
        )
        .filter(pk__gte=account_id, owner__first_name=name)
        .order_by("pk")
    )


MEMBERS = PreparedQuery(Account, _members, account_id=int, since=datetime, name=str)


def _as_compared(accounts: list[Account]) -> list[tuple[object, ...]]:
    return [
        (a.pk, a.company_name, a.credit_balance, a.created_at, a.owner.email, a.busy, a.label)
        for a in accounts
    ]


def test_rows_are_those_of_the_queryset_built_each_time() -> None:
    assert MEMBERS.is_prepared("default")
    olivia = UserFactory(first_name="Olivia")
    first = AccountFactory(owner=olivia, credit_balance="12.50")
    second = AccountFactory(owner=olivia)
    AccountFactory(owner=UserFactory(first_name="Other"))
    MembershipFactory(account=second)
    now = timezone.now()
    for values in (
        {"account_id": first.pk, "since": now - timedelta(days=1), "name": "Olivia"},
        {"account_id": second.pk, "since": now - timedelta(days=1), "name": "Olivia"},
        {"account_id": first.pk, "since": now + timedelta(days=1), "name": "Olivia"},
        {"account_id": first.pk, "since": now, "name": "Nobody"},
    ):
        built = list(_members(**values))
        with CaptureQueriesContext(connection) as queries:
            prepared = MEMBERS.fetch(**values)
        assert len(queries) == 1  # the owner came with the row (select_related)
        assert _as_compared(prepared) == _as_compared(built), values
    assert [
        a.busy
        for a in MEMBERS.fetch(account_id=first.pk, since=now - timedelta(days=1), name="Olivia")
    ] == [False, True]


def test_a_value_that_reaches_the_sql_changed_is_built_each_time() -> None:
    """`icontains` sends "%value%": no mark is found as given, so the queryset is built
    for each call, still answering right."""
    prepared = PreparedQuery(
        Account, lambda name: Account.objects.filter(company_name__icontains=name), name=str
    )
    assert not prepared.is_prepared("default")
    acme = AccountFactory(company_name="Acme Web Studio")
    AccountFactory(company_name="Globex")
    assert prepared.fetch(name="web") == [acme]


def test_values_list_rows_are_tuples() -> None:
    prepared = PreparedQuery(
        Account,
        lambda owner_id: Account.objects.filter(owner_id=owner_id).values_list(
            "pk", "company_name"
        ),
        owner_id=int,
    )
    account = AccountFactory(company_name="Acme")
    assert prepared.is_prepared("default")
    assert prepared.fetch(owner_id=account.owner_id) == [(account.pk, "Acme")]
    assert prepared.fetch(owner_id=account.owner_id + 1000) == []
    flat = PreparedQuery(
        Account,
        lambda owner_id: Account.objects.filter(owner_id=owner_id).values_list("pk", flat=True),
        owner_id=int,
    )
    assert not flat.is_prepared("default")  # built each time: its rows are not tuples
    assert flat.fetch(owner_id=account.owner_id) == [account.pk]


def test_every_value_must_be_given_and_of_a_kind_with_marks() -> None:
    with pytest.raises(TypeError):
        PreparedQuery(Account, lambda when: Account.objects.all(), when=float)
    with pytest.raises(TypeError):
        MEMBERS.fetch(account_id=1, since=timezone.now())


def test_each_thread_compiles_its_own() -> None:
    """A compiler belongs to its thread's connection: a second thread gets its own."""
    MEMBERS.fetch(account_id=0, since=timezone.now(), name="x")
    mine = MEMBERS._local.by_alias["default"]
    theirs = []
    thread = threading.Thread(
        target=lambda: theirs.append(MEMBERS._compiled("default"))  # compile only: no query
    )
    thread.start()
    thread.join()
    assert theirs[0] is not None and theirs[0] is not mine
    assert theirs[0].sql == mine.sql


def test_the_requests_queries_are_prepared() -> None:
    """The queries asked on every request take the prepared path on this database (a
    Django upgrade that broke the marks would fall back silently, and slowly)."""
    for query in (ACCESS_ONLY.prepared, PAGE_ACCESS.prepared, TOKEN_ACCESS.prepared, SELECTABLE):
        assert query.is_prepared(connection.alias)


def test_the_access_is_the_same_through_either_path(owner: User, account: Account) -> None:
    """``access_with``'s prepared query and the queryset it is built from give the same
    access: the owner, a scoped member, an expired one, a stranger."""
    member = MembershipFactory(account=account, permissions=["invoices"], scope={"domain": [7]})
    expired = MembershipFactory(
        account=account, permissions=["tickets"], expires_at=timezone.now() - timedelta(seconds=1)
    )
    stranger = UserFactory()
    now = timezone.now()
    unprepared = PreparedQuery(
        Account,
        lambda **values: ACCESS_ONLY.prepared.build(**values),
        user_id=int,
        account_id=int,
        now=datetime,
    )
    unprepared._local.by_alias = {"default": None}  # as when the marks are not found
    for person in (owner, member.user, expired.user, stranger):
        access = access_for(person, account.pk, now)
        other, _ = access_with(person, account.pk, now, query=AccessQuery(unprepared, ()))
        summary = [
            (a.is_owner, sorted(a.permissions), a.scope) if a is not None else None
            for a in (access, other)
        ]
        assert summary[0] == summary[1], person
    assert access_for(member.user, account.pk, now).scope == {"domain": frozenset({7})}


def test_an_account_id_that_is_no_id_finds_no_access(owner: User, account: Account) -> None:
    assert access_for(owner, str(account.pk)) is not None
    for odd in (True, "x1", "", "\u0661", 1.5, [account.pk]):  # (an Arabic-Indic one)
        assert access_for(owner, odd) is None


REQUEST_QUERIES = {
    "ACCESS_ONLY": ACCESS_ONLY.prepared,
    "PAGE_ACCESS": PAGE_ACCESS.prepared,
    "TOKEN_ACCESS": TOKEN_ACCESS.prepared,
    "SELECTABLE": SELECTABLE,
}
VALUE_SETS = [
    {"user_id": 5, "account_id": 5, "now": datetime(2026, 1, 1, tzinfo=UTC), "session": ""},
    {
        "user_id": 1,
        "account_id": 2,
        "now": datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        "session": "a" * 64,
    },
    {  # values equal to the marks of other places
        "user_id": -730_519_001,
        "account_id": -730_519_000,
        "now": datetime(2001, 2, 3, 4, 5, 2, 789_012, tzinfo=UTC),
        "session": "\x1fmark-0-0\x1f",
    },
    {
        "user_id": 0,
        "account_id": 2**62,
        "now": datetime(2030, 6, 1, tzinfo=UTC),
        "session": "%_'\"\\",
    },
]


@pytest.mark.parametrize("name", list(REQUEST_QUERIES))
def test_the_filled_in_sql_is_the_sql_the_orm_builds_for_those_values(name: str) -> None:
    """Each value lands in its own places, with its type, for every request query: the
    SQL and parameters are exactly those of the queryset built for the same values."""
    query = REQUEST_QUERIES[name]
    for value_set in VALUE_SETS:
        values = {k: v for k, v in value_set.items() if k in query.kinds}
        built = query.build(**values).query.get_compiler(using=connection.alias).as_sql()
        filled = query.sql_for(connection.alias, **values)
        assert filled is not None
        assert filled[0] == built[0]
        assert [(type(p), p) for p in filled[1]] == [(type(p), p) for p in built[1]], values


def test_a_value_not_plainly_of_its_kind_is_left_to_the_orm(owner: User, account: Account) -> None:
    """An id past 64 bits, a str for an int, a naive time: the ORM converts these or
    answers without SQL (an id out of range finds nothing); raw SQL would fail (SQLite
    raises OverflowError), so such a call is built instead, answering as the ORM does."""
    now = timezone.now()
    prepared = ACCESS_ONLY.prepared
    for odd in (
        {"account_id": 2**63},
        {"account_id": str(account.pk)},
        {"now": now.replace(tzinfo=None)},
    ):
        values = {"user_id": owner.pk, "account_id": account.pk, "now": now, **odd}
        assert prepared.sql_for(connection.alias, **values) is None, odd
    assert prepared.fetch(user_id=owner.pk, account_id=2**63, now=now) == []
    assert prepared.fetch(user_id=owner.pk, account_id=-(2**63) - 1, now=now) == []
    assert [
        a.pk for a in prepared.fetch(user_id=owner.pk, account_id=str(account.pk), now=now)
    ] == [account.pk]


def test_a_session_holding_a_huge_account_id_is_sent_to_access_removed(
    owner: User, account: Account
) -> None:
    client = Client()
    client.force_login(owner)
    session = client.session
    session["current_account_id"] = "9" * 25
    session.save()
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:access_removed")
    for huge in (2**63, 2**64, "9" * 19, "9" * 25, 0, -1):
        assert access_for(owner, huge) is None


def test_a_session_without_a_tracking_token_adopts_no_tracked_row(
    owner: User, account: Account
) -> None:
    """The page's access query looks a session up by the digest "" when it carries no
    tracking token. No row is ever written with it; were one there (ended), it must not
    be taken for this session's: the session is tracked anew, not logged out."""
    TrackedSession.objects.create(user=owner, digest="", ended_at=timezone.now(), end_reason="user")
    client = Client()
    client.force_login(owner)
    session = client.session
    session["current_account_id"] = account.pk
    session.pop(SESSION_TRACKING_KEY, None)
    session.save()
    TrackedSession.objects.exclude(digest="").delete()
    response = client.get("/")
    assert response.status_code == 200
    assert (
        TrackedSession.objects.filter(user=owner, ended_at__isnull=True).exclude(digest="").exists()
    )
