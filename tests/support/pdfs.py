"""Real PDF files for tests of the mail type and the Click2Mail profile."""

from __future__ import annotations

import io

from pypdf import PdfWriter

__all__ = ["pdf"]


def pdf(pages: int) -> bytes:
    """A PDF of `pages` blank letter-size pages."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
