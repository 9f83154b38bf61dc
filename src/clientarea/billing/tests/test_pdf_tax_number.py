"""The account's VAT / tax number is printed under "Bill to", on the invoice page and in
the PDF: the number the invoice was issued with, or, for an invoice issued before that
was recorded, the account's current one."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account
from clientarea.billing.models import Invoice
from clientarea.core import demo

from .factories import make_invoice
from .pdf_text import pdf_text

pytestmark = pytest.mark.django_db


def bill_to(client: Client, invoice: Invoice) -> tuple[str, str]:
    page = client.get(reverse("billing:invoice_detail", args=[invoice.pk])).content.decode()
    pdf = client.get(reverse("billing:invoice_pdf", args=[invoice.pk])).content
    return page, pdf_text(pdf)


def test_the_tax_number_is_printed_under_bill_to(
    login_client: Callable[..., Client], account: Account
) -> None:
    Account.objects.filter(pk=account.pk).update(tax_number="IE1234567T")
    account.refresh_from_db()
    invoice = make_invoice(account)
    page, pdf = bill_to(login_client(account.owner, account), invoice)
    assert "<br>VAT / tax number: IE1234567T</p>" in page
    assert "VAT / tax number: IE1234567T" in pdf


def test_no_tax_number_prints_no_line(
    login_client: Callable[..., Client], account: Account
) -> None:
    invoice = make_invoice(account)
    page, pdf = bill_to(login_client(account.owner, account), invoice)
    assert "VAT / tax number" not in page and "VAT / tax number" not in pdf


def test_an_invoice_keeps_the_tax_number_it_was_issued_with(
    login_client: Callable[..., Client], account: Account
) -> None:
    issued_with = make_invoice(account)
    issued_without = make_invoice(account)
    Invoice.objects.filter(pk=issued_with.pk).update(tax_number="DE123456788")
    Invoice.objects.filter(pk=issued_without.pk).update(tax_number="")
    Account.objects.filter(pk=account.pk).update(tax_number="IE1234567T")
    client = login_client(account.owner, account)
    page, pdf = bill_to(client, issued_with)
    assert "DE123456788" in page and "DE123456788" in pdf
    assert "IE1234567T" not in page and "IE1234567T" not in pdf
    page, pdf = bill_to(client, issued_without)
    assert "VAT / tax number" not in page and "VAT / tax number" not in pdf
    # Issued before numbers were recorded (NULL): it never gains today's number.
    Invoice.objects.filter(pk=issued_without.pk).update(tax_number=None)
    page, pdf = bill_to(client, issued_without)
    assert "IE1234567T" not in page and "IE1234567T" not in pdf


def test_the_demo_account_shows_its_vat_number_on_its_invoices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    only = SimpleNamespace(
        get_app_configs=lambda: [apps.get_app_config(a) for a in ("accounts", "billing")]
    )
    monkeypatch.setattr(demo, "apps", only)
    ctx = demo.demo_load()
    assert ctx.main.tax_number == "IE1234567T"
    invoice = Invoice.objects.filter(account=ctx.main).first()
    assert invoice is not None
    client = Client()
    client.force_login(ctx.owner)
    session = client.session
    session["current_account_id"] = ctx.main.pk
    session.save()
    page, pdf = bill_to(client, invoice)
    assert "VAT / tax number: IE1234567T" in page and "VAT / tax number: IE1234567T" in pdf


def test_a_new_invoice_takes_the_accounts_tax_number_when_issued(account: Account) -> None:
    account.tax_number = "IE1234567T"
    account.save(update_fields=["tax_number"])
    invoice = make_invoice(account)
    assert invoice.tax_number == "IE1234567T"
    account.tax_number = "IE9876543W"
    account.save(update_fields=["tax_number"])
    invoice.refresh_from_db()
    assert invoice.bill_to_tax_number == "IE1234567T"  # an invoice never changes
