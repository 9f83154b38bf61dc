from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clientarea.accounts.models import Account, Membership
from clientarea.accounts.tests.factories import access_of
from clientarea.billing import services
from clientarea.billing.models import Invoice, InvoiceCounter, PaymentMethod, Transaction

from .factories import DECLINED_CARD, card, make_invoice, make_payment_method
from .pdf_text import pdf_text

pytestmark = pytest.mark.django_db
D = Decimal


def bulk_invoices(account: Account, n: int) -> None:
    """Many invoices fast (the service is tested elsewhere); half unpaid, some overdue."""
    counter, _ = InvoiceCounter.objects.get_or_create(pk=1)
    today = timezone.localdate()
    Invoice.objects.bulk_create(
        Invoice(
            account=account,
            number=counter.last_number + i + 1,
            currency="EUR",
            issue_date=today - datetime.timedelta(days=7 * i),
            due_date=today - datetime.timedelta(days=7 * i - 14),
            total=D("10.00"),
            subtotal=D("10.00"),
            status="paid" if i % 2 else "unpaid",
            amount_paid=D("10.00") if i % 2 else D("0.00"),
        )
        for i in range(n)
    )
    counter.last_number += n
    counter.save()


def count_list_queries(client: Client, query: str = "") -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("billing:invoice_list") + query)
    assert response.status_code == 200
    return len(ctx.captured_queries)


def test_invoice_list_runs_a_fixed_number_of_queries(
    account: Account, other_account: Account, login_client: Callable[..., Client]
) -> None:
    client = login_client(account.owner, account)
    bulk_invoices(account, 5)
    client.get(reverse("billing:invoice_list"))  # warm up: the session settles once
    few = count_list_queries(client)
    few_filtered = count_list_queries(client, "?status=overdue")
    bulk_invoices(account, 495)
    assert count_list_queries(client) == few
    assert count_list_queries(client, "?status=overdue") == few_filtered
    assert count_list_queries(client, "?status=unpaid&page=3") == few_filtered


def test_invoice_list_newest_first_paginated_with_unpaid_total_and_filter(
    account: Account, login_client: Callable[..., Client]
) -> None:
    bulk_invoices(account, 45)
    client = login_client(account.owner, account)
    page = client.get(reverse("billing:invoice_list"))
    invoices = list(page.context["invoices"])
    assert len(invoices) == 20
    assert invoices[0].issue_date >= invoices[-1].issue_date
    assert page.context["page_obj"].paginator.num_pages == 3
    assert page.context["unpaid_total"] == D("230.00")  # 23 unpaid x 10.00
    assert "230.00 EUR" in page.content.decode()
    paid = client.get(reverse("billing:invoice_list") + "?status=paid")
    assert {i.status for i in paid.context["invoices"]} == {"paid"}
    overdue = client.get(reverse("billing:invoice_list") + "?status=overdue")
    assert overdue.context["invoices"]
    assert all(i.display_status == "overdue" for i in overdue.context["invoices"])
    unpaid = client.get(reverse("billing:invoice_list") + "?status=unpaid")
    assert "status=unpaid&amp;page=2" in unpaid.content.decode()
    bogus = client.get(reverse("billing:invoice_list") + "?status=<script>&page=zz")
    assert bogus.status_code == 200


def test_invoice_page_shows_lines_totals_and_credit(
    account: Account, login_client: Callable[..., Client]
) -> None:
    invoice = make_invoice(account)
    services.credit_add(account_id=account.pk, amount=D("12.34"), reason="x", actor=account.owner)
    client = login_client(account.owner, account)
    body = client.get(reverse("billing:invoice_detail", args=[invoice.pk])).content.decode()
    assert f"Invoice #{invoice.number}" in body and "Business Hosting (monthly)" in body
    assert "123.00 EUR" in body and "Pay Now" in body
    listing = client.get(reverse("billing:invoice_list")).content.decode()
    assert "12.34 EUR" in listing  # the credit balance is on the billing pages


def test_pdf_download_is_a_real_pdf_attachment(
    account: Account, login_client: Callable[..., Client], settings: object
) -> None:
    invoice = make_invoice(account)
    response = login_client(account.owner, account).get(
        reverse("billing:invoice_pdf", args=[invoice.pk])
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        f'attachment; filename="invoice-{invoice.number}.pdf"'
    )
    content = response.content
    assert content.startswith(b"%PDF-") and content.rstrip().endswith(b"%%EOF")
    # The number, provider, customer, totals and status are printed.
    printed = pdf_text(content)
    for text in (
        f"#{invoice.number}",
        "Jiinubi Hosting Ltd",
        "Acme Web Studio",
        "EUR 123.00",
        "UNPAID",
    ):
        assert text in printed, text


def test_pay_page_pays_with_a_new_card_and_never_echoes_it(
    account: Account, member_factory: Callable[..., Membership], login_client: Callable[..., Client]
) -> None:
    invoice = make_invoice(account)
    accountant = member_factory("invoices").user
    client = login_client(accountant, account)
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    page = client.get(url)
    key = page.context["form"]["idempotency_key"].value()
    assert key and f'value="{key}"' in page.content.decode()
    assert "save_card" not in page.content.decode()  # only the owner may store a card
    bad = client.post(
        url, {"method": "new_card", "card_token": "tok_sandbox_forged", "idempotency_key": key}
    )
    assert bad.status_code == 200
    body = bad.content.decode()
    assert "The card could not be read: enter it again." in body
    assert "tok_sandbox_forged" not in body
    token = card()
    data = {
        "method": "new_card",
        "card_token": token,
        "idempotency_key": key,
        "save_card": "on",  # forged: ignored for a sub-account
    }
    done = client.post(url, data, follow=True)
    assert "is paid" in done.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert PaymentMethod.objects.count() == 0
    # Submitting the same form again (double click, back button) charges nothing more.
    client.post(url, data)
    assert Transaction.objects.count() == 1


def test_a_declined_card_shows_why_and_offers_a_fresh_form(
    account: Account, login_client: Callable[..., Client]
) -> None:
    invoice = make_invoice(account)
    client = login_client(account.owner, account)
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    key = client.get(url).context["form"]["idempotency_key"].value()
    response = client.post(
        url,
        {"method": "new_card", "card_token": card(DECLINED_CARD), "idempotency_key": key},
    )
    assert response.status_code == 200
    assert "declined by the bank" in response.content.decode()
    assert response.context["form"]["idempotency_key"].value() != key
    invoice.refresh_from_db()
    assert invoice.status == "unpaid"
    # The declined attempt is recorded, and listed on the invoice with its reason.
    assert Transaction.objects.get().status == "declined"
    page = client.get(reverse("billing:invoice_detail", args=[invoice.pk])).content.decode()
    assert "Declined: Your card was declined by the bank." in page


def test_credit_covering_part_is_offered_as_apply_credit_then_pay_the_rest(
    account: Account, login_client: Callable[..., Client]
) -> None:
    invoice = make_invoice(account)  # 123.00
    services.credit_add(account_id=account.pk, amount=D("23.00"), reason="x", actor=account.owner)
    client = login_client(account.owner, account)
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    page = client.get(url)
    form = page.context["form"]
    body = page.content.decode()
    # Credit alone would pay only part: it is no method of its own, and the method chosen
    # by default pays the whole balance.
    assert [value for value, _ in form.fields["method"].choices] == ["new_card", "bank_transfer"]
    assert form["method"].value() == "new_card"
    assert (
        f"Apply my credit balance (23.00 {account.currency}) first, then pay the rest "
        f"(100.00 {account.currency}) by the method chosen below"
    ) in body
    key = form["idempotency_key"].value()
    # A forged "credit" method is refused, not taken as a silent partial payment.
    forged = client.post(url, {"method": "credit", "idempotency_key": key})
    assert forged.status_code == 200 and "Select a valid choice" in forged.content.decode()
    invoice.refresh_from_db()
    assert invoice.balance == D("123.00")
    done = client.post(
        url, {"method": "bank_transfer", "apply_credit": "on", "idempotency_key": key}, follow=True
    )
    body = done.content.decode()
    assert f"Your credit of 23.00 {account.currency} was applied." in body
    assert "Awaiting bank transfer" in body
    invoice.refresh_from_db()
    assert invoice.balance == D("100.00") and invoice.awaiting_transfer_since is not None
    transfer = Transaction.objects.get(status="pending")
    assert transfer.amount == D("100.00")
    # The same form again applies nothing more.
    client.post(url, {"method": "bank_transfer", "apply_credit": "on", "idempotency_key": key})
    account.refresh_from_db()
    assert account.credit_balance == 0 and Transaction.objects.count() == 2


def test_apply_credit_then_a_declined_card_says_the_credit_was_applied(
    account: Account, login_client: Callable[..., Client]
) -> None:
    invoice = make_invoice(account)  # 123.00
    services.credit_add(account_id=account.pk, amount=D("23.00"), reason="x", actor=account.owner)
    client = login_client(account.owner, account)
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    key = client.get(url).context["form"]["idempotency_key"].value()
    response = client.post(
        url,
        {
            "method": "new_card",
            "card_token": card(DECLINED_CARD),
            "apply_credit": "on",
            "idempotency_key": key,
        },
    )
    body = response.content.decode()
    assert "was applied; Your card was declined by the bank." in body
    invoice.refresh_from_db()
    assert invoice.balance == D("100.00")
    # The page now offers the rest, without credit (none is left).
    assert "apply_credit" not in response.context["form"].fields
    key = response.context["form"]["idempotency_key"].value()
    paid = client.post(
        url, {"method": "new_card", "card_token": card(), "idempotency_key": key}, follow=True
    )
    assert "is paid" in paid.content.decode()
    assert Transaction.objects.get(status="succeeded", gateway="sandbox").amount == D("100.00")


def test_credit_that_covers_the_balance_is_the_default_method(
    account: Account, login_client: Callable[..., Client]
) -> None:
    invoice = make_invoice(account)  # 123.00
    services.credit_add(account_id=account.pk, amount=D("200.00"), reason="x", actor=account.owner)
    client = login_client(account.owner, account)
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    form = client.get(url).context["form"]
    assert form["method"].value() == "credit" and "apply_credit" not in form.fields
    key = form["idempotency_key"].value()
    done = client.post(url, {"method": "credit", "idempotency_key": key}, follow=True)
    assert "is paid" in done.content.decode()


def test_a_sub_account_sees_only_brand_and_last_four(
    account: Account, member_factory: Callable[..., Membership], login_client: Callable[..., Client]
) -> None:
    method = make_payment_method(account)
    invoice = make_invoice(account)
    client = login_client(member_factory("invoices").user, account)
    secret_bits = [method.token, f"{method.exp_month:02d}/{method.exp_year}", "expires"]
    for url in (
        reverse("billing:payment_methods"),
        reverse("billing:invoice_pay", args=[invoice.pk]),
        reverse("billing:invoice_list"),
        reverse("billing:invoice_detail", args=[invoice.pk]),
    ):
        body = client.get(url).content.decode()
        for bit in secret_bits:
            assert bit not in body, (url, bit)
    assert "Visa ending in 4242" in client.get(reverse("billing:payment_methods")).content.decode()
    # The pay form names a stored card by its id, never its token.
    pay_body = client.get(reverse("billing:invoice_pay", args=[invoice.pk])).content.decode()
    assert f'value="card-{method.pk}"' in pay_body
    assert "Add a Card" not in client.get(reverse("billing:payment_methods")).content.decode()


def test_the_owner_adds_a_card_after_confirming_the_password_and_removes_it(
    account: Account, login_client: Callable[..., Client]
) -> None:
    client = login_client(account.owner, account)
    session = client.session
    session["reauth_at"] = int(timezone.now().timestamp()) - 3600  # a stale login
    session.save()
    add = reverse("billing:payment_method_add")
    response = client.get(add)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:confirm_password"))
    session = client.session
    session["reauth_at"] = int(timezone.now().timestamp())
    session.save()
    year = str(timezone.localdate().year + 2)
    expired = client.post(
        add, {"card_token": card(exp_month=1, exp_year=timezone.localdate().year - 1)}
    )
    assert expired.status_code == 200 and PaymentMethod.objects.count() == 0
    assert "This card has expired." in expired.content.decode()
    forged = client.post(add, {"card_token": "tok_sandbox_4111111111111111"})
    assert "enter it again" in forged.content.decode()
    missing = client.post(add, {})
    assert "needs JavaScript" in missing.content.decode()
    ok = client.post(
        add, {"card_token": card("5555555555554444", exp_month=5, exp_year=int(year))}, follow=True
    )
    assert "Mastercard ending in 4444 was saved" in ok.content.decode()
    method = PaymentMethod.objects.get()
    assert f"05/{year}" in client.get(reverse("billing:payment_methods")).content.decode()
    client.post(reverse("billing:payment_method_remove", args=[method.pk]))
    assert PaymentMethod.objects.count() == 0


def test_paid_invoice_pay_page_redirects(
    account: Account, login_client: Callable[..., Client]
) -> None:
    invoice = make_invoice(account)
    services.invoice_cancel(invoice_id=invoice.pk, actor=account.owner)
    response = login_client(account.owner, account).get(
        reverse("billing:invoice_pay", args=[invoice.pk])
    )
    assert response.status_code == 302


def test_nav_item_and_dashboard_tile(
    account: Account, member_factory: Callable[..., Membership], login_client: Callable[..., Client]
) -> None:
    make_invoice(account)
    make_invoice(account)
    body = login_client(account.owner, account).get(reverse("core:dashboard")).content.decode()
    assert "Unpaid invoices" in body and ">Billing<" in body
    other = login_client(member_factory("tickets").user, account)
    body = other.get(reverse("core:dashboard")).content.decode()
    assert "Unpaid invoices" not in body and ">Billing<" not in body


@pytest.mark.parametrize("token", ["abcd", "tok_sandbox_4²42", "tok\u0000", "x" * 400, " "])
def test_a_card_token_that_is_no_token_gets_a_message_not_an_error(
    account: Account, login_client: Callable[..., Client], token: str
) -> None:
    invoice = make_invoice(account)
    client = login_client(account.owner, account)
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    key = client.get(url).context["form"]["idempotency_key"].value()
    response = client.post(
        url,
        {"method": "new_card", "card_token": token, "idempotency_key": key},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "enter it again" in body or "card details again" in body or "needs JavaScript" in body
    assert Transaction.objects.count() == 0


def test_a_stored_card_of_a_gateway_no_longer_configured_is_refused_with_a_message(
    account: Account, login_client: Callable[..., Client]
) -> None:
    invoice = make_invoice(account)
    method = make_payment_method(account)
    PaymentMethod.objects.filter(pk=method.pk).update(gateway="retired-gateway")
    client = login_client(account.owner, account)
    url = reverse("billing:invoice_pay", args=[invoice.pk])
    key = client.get(url).context["form"]["idempotency_key"].value()
    response = client.post(
        url, {"method": f"card-{method.pk}", "idempotency_key": key}, follow=True
    )
    assert response.status_code == 200
    assert "can no longer be used" in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.status == "unpaid"


def test_invoice_page_queries_do_not_grow_with_its_payments(
    account: Account, login_client: Callable[..., Client]
) -> None:
    client = login_client(account.owner, account)

    def count(n_payments: int) -> int:
        invoice = make_invoice(account)
        for _ in range(n_payments):
            services.credit_add(
                account_id=account.pk, actor=account.owner, amount=Decimal("1.00"), reason="t"
            )
            services.invoice_pay(
                invoice_id=invoice.pk,
                access=access_of(account.owner, account),
                source=services.PayWithCredit(),
                idempotency_key=f"k{n_payments}-{_}-xxxxxxxxxxxxxx",
            )
        with CaptureQueriesContext(connection) as queries:
            assert (
                client.get(reverse("billing:invoice_detail", args=[invoice.pk])).status_code == 200
            )
        return len(queries)

    assert count(1) == count(4)


def test_bill_to_names_the_country_on_the_page_and_the_pdf(
    login_client: Callable[..., Client], account: Account
) -> None:
    Account.objects.filter(pk=account.pk).update(country="DE", city="Bonn", postcode="53111")
    account.refresh_from_db()
    invoice = make_invoice(account)
    assert invoice.billing_address.splitlines()[-1] == "Germany"
    client = login_client(account.owner, account)
    page = client.get(reverse("billing:invoice_detail", args=[invoice.pk])).content.decode()
    assert "53111 Bonn<br>Germany" in page
    pdf = client.get(reverse("billing:invoice_pdf", args=[invoice.pk])).content
    assert "Germany" in pdf_text(pdf)


def test_without_a_card_gateway_no_card_is_offered_or_taken(
    account: Any, login_client: Any, settings: Any
) -> None:
    """BILLING_CARD_GATEWAY="" (production without the sandbox, before a real gateway):
    credit and bank transfer only; a forged card payment changes nothing."""
    settings.BILLING_CARD_GATEWAY = ""
    invoice = make_invoice(account)
    client = login_client(account.owner, account)
    page = client.get(reverse("billing:invoice_pay", args=[invoice.pk])).content.decode()
    assert "Bank transfer" in page
    assert "A new card" not in page and "Card number" not in page and "Sandbox" not in page
    methods = client.get(reverse("billing:payment_methods")).content.decode()
    assert "Add a Card" not in methods
    response = client.get(reverse("billing:payment_method_add"))
    assert response.status_code == 302
    forged = client.post(
        reverse("billing:invoice_pay", args=[invoice.pk]),
        {"method": "new_card", "card_token": card(), "idempotency_key": "k" * 32},
    )  # fmt: skip
    assert forged.status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == "unpaid" and not invoice.transactions.exists()
