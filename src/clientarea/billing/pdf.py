"""Draw an invoice as a PDF with fpdf2 (pure Python, no system libraries).

Text is printed in DejaVu Sans, embedded from billing/fonts/ (Latin, Greek, Cyrillic),
with Droid Sans Fallback for what it lacks (Chinese, Japanese, Korean), so a company
name or a line in any of those prints as typed. fpdf2 embeds only the glyphs used, and
the fallback font, large to read, is loaded only for a document that needs it.
"""

from __future__ import annotations

import functools
import logging
import unicodedata
from collections.abc import Iterable, Sequence
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos
from fpdf.fonts import FontFace

from .models import Invoice, InvoiceLine, Transaction

FONTS = Path(__file__).resolve().parent / "fonts"
FONT = "DejaVuSans"
FONT_FILES = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf"}
FALLBACK = "DroidSansFallback"
FALLBACK_FILE = "DroidSansFallback.ttf"

# fontTools reports each table it subsets at INFO level: dozens of lines for every PDF.
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)

INK = (29, 39, 51)
MUTED = (91, 102, 117)
LINE = (221, 227, 234)
STATUS_COLOURS = {
    "paid": (30, 122, 60),
    "overdue": (179, 38, 30),
    "unpaid": (138, 90, 0),
    "cancelled": (91, 102, 117),
    "refunded": (91, 102, 117),
}


def nfc(value: str) -> str:
    """NFC, so a letter typed as letter + combining accent prints as the one glyph."""
    return unicodedata.normalize("NFC", value or "")


@functools.cache
def _main_font_covers() -> frozenset[int]:
    """The code points both weights of the main font have a glyph for."""
    covered: frozenset[int] | None = None
    for name in FONT_FILES.values():
        with TTFont(FONTS / name, lazy=True) as font:
            cmap = frozenset(font.getBestCmap())
        covered = cmap if covered is None else covered & cmap
    return covered or frozenset()


def needs_fallback(texts: Iterable[str]) -> bool:
    covered = _main_font_covers()
    return any(ord(ch) not in covered and not ch.isspace() for value in texts for ch in nfc(value))


def _new_pdf(texts: Iterable[str]) -> FPDF:
    pdf = FPDF(format="A4", unit="mm")
    for style, name in FONT_FILES.items():
        pdf.add_font(FONT, style, FONTS / name)
    if needs_fallback(texts):
        pdf.add_font(FALLBACK, "", FONTS / FALLBACK_FILE)
        # It has one weight: bold text uses its regular glyphs.
        pdf.set_fallback_fonts([FALLBACK], exact_match=False)
    return pdf


def money(amount: Decimal, currency: str) -> str:
    return f"{currency} {amount:,.2f}"


def _qty(value: Decimal) -> str:
    return f"{value.normalize():f}" if value == value.to_integral() else f"{value:.2f}"


def invoice_pdf(
    invoice: Invoice, lines: Sequence[InvoiceLine], payments: Sequence[Transaction]
) -> bytes:
    cur = invoice.currency
    tax_number = invoice.bill_to_tax_number
    pdf = _new_pdf(
        [
            settings.SITE_NAME,
            settings.SITE_ADDRESS,
            invoice.billing_name,
            invoice.billing_address,
            tax_number,
            invoice.notes,
            *(line.description for line in lines),
            *(f"{tx.method_label} {tx.reference}" for tx in payments),
        ]
    )
    pdf.set_title(f"Invoice #{invoice.number}")
    pdf.set_author(nfc(settings.SITE_NAME))
    pdf.set_creator(nfc(settings.SITE_NAME))
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(18, 18, 18)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    # Provider (left) and invoice heading (right).
    top = pdf.get_y()
    pdf.set_text_color(*INK)
    pdf.set_font(FONT, "B", 18)
    pdf.cell(width / 2, 9, nfc(settings.SITE_NAME), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 9)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(width / 2, 4.5, nfc(settings.SITE_ADDRESS), new_x=XPos.LMARGIN)
    left_bottom = pdf.get_y()

    pdf.set_xy(pdf.l_margin + width / 2, top)
    pdf.set_text_color(*INK)
    pdf.set_font(FONT, "B", 22)
    pdf.cell(width / 2, 10, "INVOICE", align=Align.R, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 10)
    rows = [
        ("Invoice number", f"#{invoice.number}"),
        ("Issue date", invoice.issue_date.strftime("%d %B %Y")),
        ("Due date", invoice.due_date.strftime("%d %B %Y")),
    ]
    for label, value in rows:
        pdf.set_x(pdf.l_margin + width / 2)
        pdf.set_text_color(*MUTED)
        pdf.cell(width / 4, 5.5, label, align=Align.R)
        pdf.set_text_color(*INK)
        pdf.cell(width / 4, 5.5, value, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_x(pdf.l_margin + width / 2)
    status = invoice.display_status
    pdf.set_font(FONT, "B", 14)
    pdf.set_text_color(*STATUS_COLOURS.get(status, INK))
    pdf.cell(width / 2, 9, invoice.display_status_label.upper(), align=Align.R)
    pdf.set_y(max(left_bottom, pdf.get_y() + 9) + 8)

    # Bill to.
    pdf.set_font(FONT, "B", 9)
    pdf.set_text_color(*MUTED)
    pdf.cell(width, 5, "BILL TO", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*INK)
    pdf.set_font(FONT, "B", 11)
    pdf.cell(width, 6, nfc(invoice.billing_name), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 10)
    if invoice.billing_address:
        pdf.multi_cell(width / 2, 5, nfc(invoice.billing_address), new_x=XPos.LMARGIN)
    if tax_number:
        pdf.cell(
            width, 5, f"VAT / tax number: {nfc(tax_number)}", new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
    pdf.cell(width, 5, f"Account #{invoice.account_id}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)

    # Lines.
    pdf.set_draw_color(*LINE)
    pdf.set_font(FONT, "", 10)
    with pdf.table(
        col_widths=(80, 16, 30, 18, 30),
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
        line_height=6.5,
        borders_layout="HORIZONTAL_LINES",
        headings_style=FontFace(emphasis="BOLD", color=MUTED, fill_color=(245, 247, 250)),
    ) as table:
        header = table.row()
        for heading in ("Description", "Qty", "Unit price", "Tax", "Amount"):
            header.cell(heading)
        for line in lines:
            row = table.row()
            row.cell(nfc(line.description))
            row.cell(_qty(line.quantity))
            row.cell(money(line.unit_price, cur))
            row.cell(f"{line.tax_rate.normalize():f}%")
            row.cell(money(line.net_amount, cur))
    pdf.ln(4)

    # Totals, right-aligned.
    totals = [
        ("Subtotal", money(invoice.subtotal, cur), False),
        ("Tax", money(invoice.tax, cur), False),
        ("Total", money(invoice.total, cur), True),
        ("Amount paid", money(invoice.amount_paid, cur), False),
        ("Balance due", money(invoice.balance, cur), True),
    ]
    for label, value, strong in totals:
        pdf.set_x(pdf.l_margin + width - 80)
        pdf.set_font(FONT, "B" if strong else "", 11 if strong else 10)
        pdf.cell(45, 6.5, label, align=Align.R)
        pdf.cell(35, 6.5, value, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    if payments:
        pdf.ln(6)
        pdf.set_font(FONT, "B", 9)
        pdf.set_text_color(*MUTED)
        pdf.cell(width, 5, "PAYMENTS", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(*INK)
        pdf.set_font(FONT, "", 9)
        for tx in payments:
            sign = "-" if tx.kind == Transaction.Kind.REFUND else ""
            entry = (
                f"{tx.created_at:%d %b %Y}  {tx.get_kind_display()}  "
                f"{nfc(tx.method_label)}  {sign}{money(tx.amount, tx.currency)}"
                f"  {nfc(tx.reference)}"
            )
            pdf.cell(width, 5, entry, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    if invoice.notes:
        pdf.ln(6)
        pdf.set_font(FONT, "", 9)
        pdf.multi_cell(width, 4.5, nfc(invoice.notes), new_x=XPos.LMARGIN)

    pdf.ln(8)
    pdf.set_font(FONT, "", 9)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(
        width,
        4.5,
        nfc(
            f"Please quote INV-{invoice.number} with any payment. "
            f"Thank you for choosing {settings.SITE_NAME}."
        ),
        new_x=XPos.LMARGIN,
    )
    return bytes(pdf.output())
