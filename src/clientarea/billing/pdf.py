"""Draw an invoice as a PDF with fpdf2 (pure Python, no system libraries).

The built-in Helvetica font only covers Latin-1, so text is folded to it (accents kept
where Latin-1 has them, anything else replaced) instead of failing on a company name.
Amounts are printed with the currency code, which every font can show.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from decimal import Decimal

from django.conf import settings
from fpdf import FPDF
from fpdf.enums import Align, XPos, YPos
from fpdf.fonts import FontFace

from .models import Invoice, InvoiceLine, Transaction

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


PUNCTUATION = str.maketrans(
    {
        "\u2013": "-",
        "\u2014": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\u20ac": "EUR ",
        "\u2022": "-",
        "\u00a0": " ",
    }
)


def latin1(text: str) -> str:
    text = unicodedata.normalize("NFC", text or "").translate(PUNCTUATION)
    out = []
    for ch in text:
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            folded = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
            out.append(folded or "?")
    return "".join(out)


def money(amount: Decimal, currency: str) -> str:
    return f"{currency} {amount:,.2f}"


def _qty(value: Decimal) -> str:
    return f"{value.normalize():f}" if value == value.to_integral() else f"{value:.2f}"


def invoice_pdf(
    invoice: Invoice, lines: Sequence[InvoiceLine], payments: Sequence[Transaction]
) -> bytes:
    cur = invoice.currency
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_compression(False)
    pdf.set_title(f"Invoice #{invoice.number}")
    pdf.set_author(latin1(settings.SITE_NAME))
    pdf.set_creator(latin1(settings.SITE_NAME))
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.set_margins(18, 18, 18)
    pdf.add_page()
    width = pdf.w - pdf.l_margin - pdf.r_margin

    # Provider (left) and invoice heading (right).
    top = pdf.get_y()
    pdf.set_text_color(*INK)
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(width / 2, 9, latin1(settings.SITE_NAME), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(width / 2, 4.5, latin1(settings.SITE_ADDRESS), new_x=XPos.LMARGIN)
    left_bottom = pdf.get_y()

    pdf.set_xy(pdf.l_margin + width / 2, top)
    pdf.set_text_color(*INK)
    pdf.set_font("Helvetica", "B", 22)
    pdf.cell(width / 2, 10, "INVOICE", align=Align.R, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 10)
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
    pdf.set_font("Helvetica", "B", 14)
    pdf.set_text_color(*STATUS_COLOURS.get(status, INK))
    pdf.cell(width / 2, 9, invoice.display_status_label.upper(), align=Align.R)
    pdf.set_y(max(left_bottom, pdf.get_y() + 9) + 8)

    # Bill to.
    pdf.set_font("Helvetica", "B", 9)
    pdf.set_text_color(*MUTED)
    pdf.cell(width, 5, "BILL TO", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*INK)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(width, 6, latin1(invoice.billing_name), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 10)
    if invoice.billing_address:
        pdf.multi_cell(width / 2, 5, latin1(invoice.billing_address), new_x=XPos.LMARGIN)
    pdf.cell(width, 5, f"Account #{invoice.account_id}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(6)

    # Lines.
    pdf.set_draw_color(*LINE)
    pdf.set_font("Helvetica", "", 10)
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
            row.cell(latin1(line.description))
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
        pdf.set_font("Helvetica", "B" if strong else "", 11 if strong else 10)
        pdf.cell(45, 6.5, label, align=Align.R)
        pdf.cell(35, 6.5, value, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    if payments:
        pdf.ln(6)
        pdf.set_font("Helvetica", "B", 9)
        pdf.set_text_color(*MUTED)
        pdf.cell(width, 5, "PAYMENTS", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(*INK)
        pdf.set_font("Helvetica", "", 9)
        for tx in payments:
            sign = "-" if tx.kind == Transaction.Kind.REFUND else ""
            text = (
                f"{tx.created_at:%d %b %Y}  {tx.get_kind_display()}  "
                f"{latin1(tx.method_label)}  {sign}{money(tx.amount, tx.currency)}"
                f"  {tx.reference}"
            )
            pdf.cell(width, 5, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    if invoice.notes:
        pdf.ln(6)
        pdf.set_font("Helvetica", "", 9)
        pdf.multi_cell(width, 4.5, latin1(invoice.notes), new_x=XPos.LMARGIN)

    pdf.ln(8)
    pdf.set_font("Helvetica", "", 9)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(
        width,
        4.5,
        latin1(
            f"Please quote INV-{invoice.number} with any payment. "
            f"Thank you for choosing {settings.SITE_NAME}."
        ),
        new_x=XPos.LMARGIN,
    )
    return bytes(pdf.output())
