"""The first endpoints: what they answer, how they filter and paginate, that another
account's or an out-of-reach object is a 404, and that every error is a problem."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clientarea.accounts.models import Account, Membership
from clientarea.billing.models import Invoice
from clientarea.billing.tests.factories import make_invoice
from clientarea.hosting.tests.factories import ServiceFactory

from .helpers import api_get, assert_problem, make_token

pytestmark = pytest.mark.django_db

INVOICES = "/api/v1/invoices"


def test_account_shows_what_the_token_carries(
    account: Account, member_factory: Callable[..., Membership]
) -> None:
    _, owner_secret = make_token(account, codes=["profile", "invoices"], name="Books")
    body = api_get(owner_secret, "/api/v1/account").json()
    assert body["id"] == account.pk and body["name"] == "Acme Web Studio"
    assert body["profile"]["company_name"] == "Acme Web Studio"
    assert Decimal(body["credit_balance"]) == account.credit_balance
    assert body["token"]["name"] == "Books"
    assert body["token"]["permissions"] == ["invoices", "profile"]
    assert body["token"]["scope"] is None
    service = ServiceFactory(account=account)
    member = member_factory("tickets", scope={"service": [service.pk], "domain": []}).user
    _, secret = make_token(account, member, codes=["tickets"])
    body = api_get(secret, "/api/v1/account").json()
    assert body["profile"] is None and body["credit_balance"] is None
    assert body["token"]["scope"] == {"service": [service.pk], "domain": []}


def test_invoice_list_filters_and_paginates_with_a_cursor(account: Account) -> None:
    invoices = [make_invoice(account) for _ in range(5)]
    overdue = make_invoice(account, issue_date=timezone.localdate() - timedelta(days=40))
    Invoice.objects.filter(pk=invoices[0].pk).update(status="paid")
    _, secret = make_token(account)
    first = api_get(secret, f"{INVOICES}?page_size=2").json()
    assert [r["number"] for r in first["results"]] == sorted(
        (i.number for i in [*invoices, overdue]), reverse=True
    )[:2]
    assert first["previous"] is None and first["next"]
    seen = [r["id"] for r in first["results"]]
    page = first
    while page["next"]:
        page = Client().get(page["next"], HTTP_AUTHORIZATION=f"Bearer {secret}").json()
        seen += [r["id"] for r in page["results"]]
    assert sorted(seen) == sorted(i.pk for i in [*invoices, overdue])
    paid = api_get(secret, f"{INVOICES}?status=paid").json()["results"]
    assert [r["id"] for r in paid] == [invoices[0].pk] and paid[0]["status"] == "paid"
    late = api_get(secret, f"{INVOICES}?status=overdue").json()["results"]
    assert [(r["id"], r["status"]) for r in late] == [(overdue.pk, "overdue")]
    row = first["results"][0]
    assert set(row) == {
        "id", "number", "status", "currency", "issue_date", "due_date", "subtotal", "tax",
        "total", "amount_paid", "balance", "paid_at",
    }  # fmt: skip
    assert row["total"] == "123.00" and row["balance"] == "123.00"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=nonsense", "status"),
        ("page_size=0", "page_size"),
        ("page_size=101", "page_size"),
        ("page_size=abc", "page_size"),
        ("cursor=%%%", "cursor"),
        ("cursor=cD1hYmM%3D", "cursor"),  # p=abc: not a position of this list
    ],
)
def test_bad_query_is_a_400_problem_naming_the_field(
    account: Account, query: str, field: str
) -> None:
    make_invoice(account)
    _, secret = make_token(account)
    body = assert_problem(api_get(secret, f"{INVOICES}?{query}"), 400, "invalid")
    assert field in body["errors"] and body["detail"].startswith(field)


def test_invoice_detail_and_another_accounts_invoice_is_a_404(
    account: Account, other_account: Account
) -> None:
    mine = make_invoice(account)
    theirs = make_invoice(other_account)
    _, secret = make_token(account)
    body = api_get(secret, f"{INVOICES}/{mine.pk}").json()
    assert body["id"] == mine.pk and body["lines"][0]["description"]
    assert body["billing_name"] == mine.billing_name
    missing = assert_problem(api_get(secret, f"{INVOICES}/{theirs.pk}"), 404)
    unknown = assert_problem(api_get(secret, f"{INVOICES}/999999"), 404)
    assert missing == unknown  # nothing tells another account's invoice from none
    assert_problem(api_get(secret, f"{INVOICES}/99999999999999999999999"), 404)
    # The other account's own token cannot read ours either.
    _, theirs_secret = make_token(other_account)
    assert_problem(api_get(theirs_secret, f"{INVOICES}/{mine.pk}"), 404)
    listed = api_get(theirs_secret, INVOICES).json()["results"]
    assert [r["id"] for r in listed] == [theirs.pk]


def test_unknown_urls_and_methods_are_problems(account: Account) -> None:
    _, secret = make_token(account)
    assert_problem(api_get(secret, "/api/v1/nowhere"), 404)
    assert_problem(api_get(None, "/api/v2/invoices"), 404)
    response = Client().post(INVOICES, {}, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert_problem(response, 405)
    response = Client().delete(f"{INVOICES}/1", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert_problem(response, 405)


def test_an_unexpected_error_is_a_500_problem_not_an_html_page(account: Account) -> None:
    _, secret = make_token(account)
    client = Client(raise_request_exception=False)
    with mock.patch(
        "clientarea.billing.selectors.invoice_list_for", side_effect=RuntimeError("boom")
    ):
        response = api_get(secret, INVOICES, client)
    body = assert_problem(response, 500)
    assert "boom" not in body["detail"]


def test_api_answers_are_never_cached(account: Account) -> None:
    _, secret = make_token(account)
    response = api_get(secret, "/api/v1/account")
    assert "no-store" in response["Cache-Control"]
    assert "Authorization" in response["Vary"]


def _count(secret: str, n: int, account: Account) -> int:
    while Invoice.objects.filter(account=account).count() < n:
        make_invoice(account)
    with CaptureQueriesContext(connection) as queries:
        response = api_get(secret, f"{INVOICES}?page_size=100")
    assert response.status_code == 200 and len(response.json()["results"]) == n
    return len(queries)


def test_invoice_list_query_count_does_not_grow(account: Account, settings: Any) -> None:
    _, secret = make_token(account)
    api_get(secret, INVOICES)  # the last use is written once a minute: not in the counts
    assert _count(secret, 10, account) == _count(secret, 50, account)


@pytest.mark.parametrize(
    "query",
    [
        "page_size=%C2%B2",  # "²": a digit to str.isdigit(), not to int()
        "page_size=%D9%A3",  # an Arabic-Indic three
        "cursor=" + base64.b64encode(b"o=0&p=%C2%B2").decode(),
    ],
)
def test_unicode_digits_in_paging_are_a_400_not_a_500(account: Account, query: str) -> None:
    _, secret = make_token(account, codes=["invoices", "products"])
    for path in ("/api/v1/invoices", "/api/v1/services"):
        assert_problem(api_get(secret, f"{path}?{query}"), 400, "invalid")
