"""A Stripe Customer per account, against the local Stripe server: made once at the
first need, outside any transaction, recorded once even when two requests race."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from django.db import connection, connections, transaction

from clientarea.accounts.models import Account
from clientarea.billing.models import StripeCustomer
from clientarea.billing.stripe_gateway import StripeGateway
from clientarea.core.outside import OutsideUnavailable

from .stripe_server import StripeServer, running_server


@pytest.fixture
def server() -> Iterator[StripeServer]:
    with running_server() as srv:
        yield srv
        assert srv.invalid_requests == []


@pytest.fixture
def gateway(server: StripeServer) -> StripeGateway:
    return StripeGateway(secret_key=server.secret_key, api_base=server.base_url, timeout=1.0)


def customer_posts(server: StripeServer) -> list[dict[str, Any]]:
    return [r.params for r in server.requests if (r.method, r.path) == ("POST", "/v1/customers")]


@pytest.mark.django_db
def test_the_customer_is_made_once_and_reused(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    customer = gateway.customer_for(account)
    assert customer.startswith("cus_")
    made = server.state.customers[customer]
    assert made["metadata"] == {"account_id": str(account.pk)}
    assert (made["email"], made["name"]) == (account.owner.email, account.display_name)
    row = StripeCustomer.objects.get()
    assert (row.account_id, row.customer_id, row.livemode) == (account.pk, customer, False)
    assert gateway.customer_for(account) == customer
    assert len(customer_posts(server)) == 1  # the second time, nothing is asked


@pytest.mark.django_db
def test_each_account_has_its_own(
    gateway: StripeGateway, server: StripeServer, account: Account, other_account: Account
) -> None:
    assert gateway.customer_for(account) != gateway.customer_for(other_account)
    assert len(server.state.customers) == 2


@pytest.mark.django_db
def test_never_inside_a_transaction(gateway: StripeGateway, account: Account) -> None:
    with (
        pytest.raises(RuntimeError, match="inside a database transaction"),
        transaction.atomic(),
    ):
        gateway.customer_for(account)
    assert not StripeCustomer.objects.exists()


@pytest.mark.django_db
def test_stripe_unreachable_records_nothing(
    server: StripeServer, gateway: StripeGateway, account: Account
) -> None:
    down = StripeGateway(secret_key=server.secret_key, api_base="http://127.0.0.1:9", timeout=1.0)
    with pytest.raises(OutsideUnavailable):
        down.customer_for(account)
    assert not StripeCustomer.objects.exists()
    assert gateway.customer_for(account).startswith("cus_")


@pytest.mark.django_db
def test_an_answer_lost_is_asked_again_and_makes_one_customer(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    server.fail_next("drop")  # made at Stripe, the answer never comes: retried, same key
    customer = gateway.customer_for(account)
    assert list(server.state.customers) == [customer]
    assert StripeCustomer.objects.get().customer_id == customer


@pytest.mark.django_db
def test_a_request_that_recorded_first_wins(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    """The other request of a race records its customer while this one is at Stripe:
    this one's insert meets the unique constraint and it returns the recorded id."""
    create = gateway.customer_create

    def meanwhile(**kwargs: Any) -> str:
        StripeCustomer.objects.create(account=account, customer_id="cus_recorded_first")
        return create(**kwargs)

    with mock.patch.object(gateway, "customer_create", side_effect=meanwhile):
        assert gateway.customer_for(account) == "cus_recorded_first"
    assert StripeCustomer.objects.get().customer_id == "cus_recorded_first"


@pytest.mark.django_db
def test_live_and_test_mode_customers_are_kept_apart(account: Account) -> None:
    with running_server(secret_key="sk_test_local0123456789abcdef") as test_server:
        test = StripeGateway(secret_key=test_server.secret_key, api_base=test_server.base_url)
        test_customer = test.customer_for(account)
    with running_server(secret_key="sk_live_local0123456789abcdef") as live_server:
        live = StripeGateway(secret_key=live_server.secret_key, api_base=live_server.base_url)
        assert live.livemode and not test.livemode
        live_customer = live.customer_for(account)
        assert live_customer != test_customer
        assert live.customer_for(account) == live_customer
    assert dict(StripeCustomer.objects.values_list("livemode", "customer_id")) == {
        False: test_customer,
        True: live_customer,
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_requests_at_once_record_one_customer(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    """Two threads, each with its own connection, both find no customer and both ask
    Stripe (with different keys here, so Stripe really makes two) before either records
    one: one is recorded, and both get that one."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: two connections writing at once")
    both_asked = threading.Barrier(2, timeout=10)
    create = gateway.customer_create
    calls = iter(range(2))

    def racing(**kwargs: Any) -> str:
        made = create(**kwargs, idempotency_key=f"race-{next(calls)}-{account.pk}")
        both_asked.wait()  # neither records before both have their customer
        return made

    got: list[str] = []
    errors: list[BaseException] = []

    def request() -> None:
        try:
            got.append(gateway.customer_for(account))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    with mock.patch.object(gateway, "customer_create", side_effect=racing):
        threads = [threading.Thread(target=request) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert len(server.state.customers) == 2  # Stripe made two...
    (recorded,) = StripeCustomer.objects.values_list("customer_id", flat=True)
    assert got == [recorded, recorded]  # ...one is recorded, and both use it
