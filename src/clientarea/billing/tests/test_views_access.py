"""Authorization from the attacker's side: no `invoices` → 403; another account's id → 404."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account, Membership
from clientarea.billing.models import Invoice, PaymentMethod, Transaction

from .factories import card, make_invoice, make_payment_method

pytestmark = pytest.mark.django_db


def billing_urls(invoice: Invoice) -> list[tuple[str, str]]:
    return [
        ("get", reverse("billing:invoice_list")),
        ("get", reverse("billing:invoice_detail", args=[invoice.pk])),
        ("get", reverse("billing:invoice_pdf", args=[invoice.pk])),
        ("get", reverse("billing:invoice_pay", args=[invoice.pk])),
        ("post", reverse("billing:invoice_pay", args=[invoice.pk])),
        ("get", reverse("billing:payment_methods")),
    ]


def test_without_invoices_every_billing_page_pdf_and_pay_is_refused(
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
) -> None:
    invoice = make_invoice(account)
    member = member_factory("products", "tickets", "domains", "emails", "profile", "contacts")
    client = login_client(member.user, account)
    for method, url in billing_urls(invoice):
        response = getattr(client, method)(url, {"method": "credit"} if method == "post" else {})
        assert response.status_code == 403, url
    assert Transaction.objects.count() == 0


def test_with_invoices_every_page_answers(
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
) -> None:
    invoice = make_invoice(account)
    client = login_client(member_factory("invoices").user, account)
    for method, url in billing_urls(invoice):
        if method == "get":
            assert client.get(url).status_code == 200, url


def test_another_accounts_invoice_is_a_404_everywhere(
    account: Account,
    other_account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
) -> None:
    theirs = make_invoice(other_account)
    for user in (account.owner, member_factory("invoices").user):
        client = login_client(user, account)
        for method, url in billing_urls(theirs)[1:5]:
            assert getattr(client, method)(url).status_code == 404, url
        url = reverse("billing:payment_method_remove", args=[make_payment_method(other_account).pk])
        assert login_client(account.owner, account).post(url).status_code == 404
    assert PaymentMethod.objects.filter(account=other_account).count() == 2


def test_payment_method_changes_are_owner_only_even_with_a_forged_post(
    account: Account,
    member_factory: Callable[..., Membership],
    login_client: Callable[..., Client],
) -> None:
    method = make_payment_method(account)
    everything = member_factory(
        "profile", "contacts", "manageproducts", "managedomains", "invoices", "tickets", "emails"
    )
    client = login_client(everything.user, account)
    add = reverse("billing:payment_method_add")
    assert client.get(add).status_code == 403
    forged = {"card_token": card()}
    assert client.post(add, forged).status_code == 403
    remove = reverse("billing:payment_method_remove", args=[method.pk])
    assert client.post(remove).status_code == 403
    assert list(PaymentMethod.objects.all()) == [method]


def test_state_changes_are_post_only(account: Account, login_client: Callable[..., Client]) -> None:
    method = make_payment_method(account)
    client = login_client(account.owner, account)
    url = reverse("billing:payment_method_remove", args=[method.pk])
    assert client.get(url).status_code == 405
    assert PaymentMethod.objects.count() == 1


def test_pay_is_csrf_protected(account: Account, login_client: Callable[..., Client]) -> None:
    invoice = make_invoice(account)
    client = login_client(account.owner, account, csrf=True)
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    assert client.post(url, {"method": "bank_transfer"}).status_code == 403
    assert Transaction.objects.count() == 0
