"""Read back the text of a PDF the way a PDF viewer's copy and search see it."""

from __future__ import annotations

import io

from pypdf import PdfReader


def pdf_text(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def pdf_font_names(content: bytes) -> set[str]:
    """The names of the fonts the pages use, without the subset tag ("DejaVuSansBook")."""
    reader = PdfReader(io.BytesIO(content))
    names = set()
    for page in reader.pages:
        fonts = page["/Resources"].get_object().get("/Font", {})
        for ref in fonts.get_object().values():
            base = str(ref.get_object()["/BaseFont"]).lstrip("/")
            names.add(base.split("+", 1)[-1])
    return names
