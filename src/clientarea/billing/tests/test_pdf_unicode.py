"""The invoice PDF prints names, addresses and lines in any of Europe's alphabets and in
Chinese, Japanese and Korean as typed (embedded fonts, not a Latin-1 core font), and
stays small (only the glyphs used are embedded)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from clientarea.accounts.models import Account
from clientarea.billing.models import Invoice
from clientarea.billing.pdf import invoice_pdf
from clientarea.billing.totals import LineInput

from .factories import make_invoice
from .pdf_text import pdf_font_names, pdf_text

pytestmark = pytest.mark.django_db

MAX_SIZE = 200 * 1024

LINES = [
    "Hosting Łódź — Żółć gęślą jaźń",
    "Хостинг Москва (ежемесячно)",
    "Φιλοξενία Αθήνα",
    "東京 サーバー 레 서울 中文",
]


def unicode_invoice(account: Account) -> Invoice:
    Account.objects.filter(pk=account.pk).update(
        company_name="東京 Łódź Москва Ltd",
        address_line1="ул. Тверская 1",
        address_line2="Οδός Ερμού 5",
        city="Łódź",
        postcode="90-001",
        country="PL",
    )
    account.refresh_from_db()
    return make_invoice(
        account,
        lines=[LineInput(text, Decimal("1"), Decimal("10.00"), Decimal("23")) for text in LINES],
    )


def draw(invoice: Invoice) -> bytes:
    return invoice_pdf(invoice, list(invoice.lines.all()), [])


def test_bill_to_and_lines_print_every_script_as_typed(account: Account) -> None:
    pdf = draw(unicode_invoice(account))
    printed = pdf_text(pdf)
    for text in (
        "東京 Łódź Москва Ltd",  # bold, with the fallback font for the kanji
        "ул. Тверская 1",
        "Οδός Ερμού 5",
        "90-001 Łódź",
        "Poland",
        *LINES,
    ):
        assert text in printed, text
    assert "?" not in printed  # nothing was replaced
    assert {"DejaVuSansBook", "DejaVuSansBold", "DroidSansFallback"} <= pdf_font_names(pdf)
    assert len(pdf) < MAX_SIZE, len(pdf)


def test_text_typed_with_combining_accents_prints_as_the_letters(account: Account) -> None:
    decomposed = unicodedata.normalize("NFD", "Łódź Kraków")
    assert decomposed != "Łódź Kraków"
    invoice = make_invoice(
        account, lines=[LineInput(decomposed, Decimal("1"), Decimal("1.00"), Decimal("0"))]
    )
    assert "Łódź Kraków" in pdf_text(draw(invoice))


def test_a_latin_invoice_embeds_no_cjk_font_and_stays_small(account: Account) -> None:
    pdf = draw(make_invoice(account))
    assert "Acme Web Studio" in pdf_text(pdf)
    assert "DroidSansFallback" not in pdf_font_names(pdf)
    assert len(pdf) < 60 * 1024, len(pdf)


def test_the_downloaded_pdf_prints_the_unicode_invoice(
    account: Account, login_client: Callable[..., Client]
) -> None:
    invoice = unicode_invoice(account)
    response = login_client(account.owner, account).get(
        reverse("billing:invoice_pdf", args=[invoice.pk])
    )
    assert response.status_code == 200
    printed = pdf_text(response.content)
    assert "Хостинг Москва" in printed and "東京 サーバー" in printed
    assert len(response.content) < MAX_SIZE


def test_a_character_no_embedded_font_has_is_left_out_never_an_error(account: Account) -> None:
    invoice = make_invoice(
        account,
        lines=[LineInput("Launch 🚀 नमस्ते", Decimal("1"), Decimal("1.00"), Decimal("0"))],
    )
    printed = pdf_text(draw(invoice))
    assert "Launch" in printed and "EUR 1.00" in printed
