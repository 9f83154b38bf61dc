"""Removing a stored card detaches it at Stripe first, against the local Stripe server:
detached, already detached, unknown to Stripe, Stripe unreachable or not answering (then
nothing is removed and the owner is told so), a sandbox card (no outside call)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from django.conf import settings as django_settings
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import access_of
from clientarea.audit.models import AuditEvent
from clientarea.billing import gateways, services
from clientarea.billing.models import PaymentMethod
from clientarea.billing.stripe_gateway import StripeGateway

from .stripe_server import StripeServer, running_server

pytestmark = pytest.mark.django_db


@pytest.fixture
def server() -> Iterator[StripeServer]:
    with running_server() as srv:
        yield srv
        assert srv.invalid_requests == []


@pytest.fixture
def gateway(server: StripeServer) -> Iterator[StripeGateway]:
    stripe = StripeGateway(secret_key=server.secret_key, api_base=server.base_url, timeout=1.0)
    with mock.patch.dict(gateways.GATEWAYS, {stripe.code: stripe}):
        yield stripe


def saved_card(gateway: StripeGateway, server: StripeServer, account: Account) -> PaymentMethod:
    """A card the owner saved through a SetupIntent: attached to the account's customer
    at Stripe, stored here by its PaymentMethod id."""
    customer = gateway.customer_for(account)
    setup = server._setup_create({"customer": customer})
    pm_id = server.confirm_setup_intent(setup["id"])
    return PaymentMethod.objects.create(
        account=account,
        gateway="stripe",
        token=pm_id,
        brand="Visa",
        last4="4242",
        exp_month=12,
        exp_year=timezone.localdate().year + 2,
        created_by=account.owner,
    )


def remove(account: Account, method: PaymentMethod) -> None:
    services.payment_method_remove(
        access=access_of(account.owner, account), payment_method_id=method.pk
    )


def detaches(server: StripeServer) -> list[str]:
    return [r.path for r in server.requests if r.path.endswith("/detach")]


def test_removing_a_card_detaches_it_at_stripe(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    method = saved_card(gateway, server, account)
    assert server.state.payment_methods[method.token]["customer"]
    remove(account, method)
    assert server.state.payment_methods[method.token]["customer"] is None
    assert detaches(server) == [f"/v1/payment_methods/{method.token}/detach"]
    assert not PaymentMethod.objects.exists()
    assert AuditEvent.objects.filter(action="payment_method.removed").count() == 1


def test_a_card_already_detached_is_removed(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    method = saved_card(gateway, server, account)
    gateway.payment_method_detach(method.token)  # in Stripe's dashboard, say
    remove(account, method)
    assert not PaymentMethod.objects.exists()


def test_a_card_stripe_does_not_know_is_removed(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    method = saved_card(gateway, server, account)
    del server.state.payment_methods[method.token]
    remove(account, method)
    assert not PaymentMethod.objects.exists()


def test_stripe_unreachable_removes_nothing_and_says_so(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    method = saved_card(gateway, server, account)
    down = StripeGateway(secret_key=server.secret_key, api_base="http://127.0.0.1:9", timeout=1.0)
    with (
        mock.patch.dict(gateways.GATEWAYS, {"stripe": down}),
        pytest.raises(services.BillingError) as refused,
    ):
        remove(account, method)
    assert "Visa ending in 4242 could not be removed" in str(refused.value)
    assert "Nothing was changed" in str(refused.value)
    assert PaymentMethod.objects.filter(pk=method.pk).exists()
    assert server.state.payment_methods[method.token]["customer"]
    assert not AuditEvent.objects.filter(action="payment_method.removed").exists()


def test_no_answer_from_stripe_removes_nothing_and_a_retry_removes_it(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    method = saved_card(gateway, server, account)
    server.fail_next(*["timeout"] * django_settings.OUTSIDE_CALL_ATTEMPTS)
    with pytest.raises(services.BillingError, match="could not be removed"):
        remove(account, method)
    # Stripe did detach it; we could not know: the card stays until a retry says so.
    assert PaymentMethod.objects.filter(pk=method.pk).exists()
    remove(account, method)
    assert not PaymentMethod.objects.exists()


def test_a_sandbox_card_needs_no_outside_call(
    gateway: StripeGateway, server: StripeServer, account: Account
) -> None:
    method = PaymentMethod.objects.create(
        account=account,
        gateway="sandbox",
        token="tok_sandbox_ok_0123",
        brand="Visa",
        last4="4242",
        exp_month=12,
        exp_year=timezone.localdate().year + 2,
    )
    remove(account, method)
    assert not PaymentMethod.objects.exists()
    assert server.requests == []


def test_only_the_owner_removes_a_card(
    gateway: StripeGateway,
    server: StripeServer,
    account: Account,
    member_factory: Callable[..., Membership],
) -> None:
    method = saved_card(gateway, server, account)
    accountant = member_factory("invoices").user
    with pytest.raises(services.BillingError, match="Only the account owner"):
        services.payment_method_remove(
            access=access_of(accountant, account), payment_method_id=method.pk
        )
    assert detaches(server) == []
    assert PaymentMethod.objects.filter(pk=method.pk).exists()


def test_the_owner_is_told_on_the_page_not_a_500(
    gateway: StripeGateway,
    server: StripeServer,
    account: Account,
    login_client: Callable[..., Client],
    settings: Any,
) -> None:
    method = saved_card(gateway, server, account)
    client = login_client(account.owner, account)
    url = reverse("billing:payment_method_remove", args=[method.pk])
    down = StripeGateway(secret_key=server.secret_key, api_base="http://127.0.0.1:9", timeout=1.0)
    with mock.patch.dict(gateways.GATEWAYS, {"stripe": down}):
        answer = client.post(url)
    assert answer.status_code == 302
    told = [str(m) for m in get_messages(answer.wsgi_request)]
    assert any("could not be removed" in m for m in told)
    assert PaymentMethod.objects.filter(pk=method.pk).exists()
    answer = client.post(url)
    assert answer.status_code == 302
    assert not PaymentMethod.objects.exists()


def test_cards_removed_with_an_ownership_transfer_are_detached_once_committed(
    gateway: StripeGateway,
    server: StripeServer,
    account: Account,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from clientarea.accounts import ownership
    from clientarea.accounts.tests.factories import UserFactory

    method = saved_card(gateway, server, account)
    with django_capture_on_commit_callbacks(execute=True):
        ownership.ownership_transfer_by_staff(
            account=account,
            staff=UserFactory(is_staff=True),
            new_owner=UserFactory(),
            reason="Company sold",
            former_owner_stays=False,
            keep_payment_methods=False,
        )
    assert not PaymentMethod.objects.exists()
    assert server.state.payment_methods[method.token]["customer"] is None


def test_a_transfer_is_not_undone_when_stripe_cannot_detach(
    gateway: StripeGateway,
    server: StripeServer,
    account: Account,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from clientarea.accounts import ownership
    from clientarea.accounts.tests.factories import UserFactory

    method = saved_card(gateway, server, account)
    new_owner = UserFactory()
    down = StripeGateway(secret_key=server.secret_key, api_base="http://127.0.0.1:9", timeout=1.0)
    with (
        mock.patch.dict(gateways.GATEWAYS, {"stripe": down}),
        django_capture_on_commit_callbacks(execute=True),
    ):
        ownership.ownership_transfer_by_staff(
            account=account,
            staff=UserFactory(is_staff=True),
            new_owner=new_owner,
            reason="Company sold",
            former_owner_stays=False,
            keep_payment_methods=False,
        )
    account.refresh_from_db()
    assert account.owner == new_owner
    assert not PaymentMethod.objects.exists()
    assert f"Stored card {method.pk}" in caplog.text  # staff detach it by hand
