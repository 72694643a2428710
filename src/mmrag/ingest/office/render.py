"""Page renders of office documents: LibreOffice's PDF read by the PDF loader, and the
rendered pages' text for placing a word document's pieces on their pages.

The PDF path gives each page what a PDF page gets (a render for display and the image
spaces, its text for page-level BM25); its text chunks and figure crops are dropped,
since the native parser already gave the text, the tables and the original pictures.
"""

from __future__ import annotations

import bisect
import logging
import re
from collections.abc import Iterator

from ...config import IngestSettings
from ...types import Blob
from ..base import Piece
from ..pdf import load_pdf, pdfium_lock

__all__ = ["PageLocator", "page_pieces", "page_texts", "words"]

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+")


def page_pieces(pdf: bytes, uri: str, settings: IngestSettings) -> Iterator[Piece]:
    """The ``page`` pieces of ``pdf`` in page order (``ocr = "auto"`` reads no page: the
    native text is exact, and pictures are OCR'd as their own image pieces)."""
    # only the renders are kept: the document's own structure already gave its tables
    sub = settings.model_copy(update={"pdf_figures": False, "pdf_tables": False,
                                      "ocr": "never" if settings.ocr == "auto"
                                      else settings.ocr})
    for piece in load_pdf(Blob(uri=uri, data=pdf, mime="application/pdf"), sub):
        if piece.modality == "page":
            yield piece


def page_texts(pdf: bytes) -> list[str]:
    """Each page's text layer (no render), to match pieces to pages."""
    import pypdfium2 as pdfium

    with pdfium_lock:
        doc = pdfium.PdfDocument(pdf)
        try:
            out = []
            for index in range(len(doc)):
                page = doc[index]
                textpage = page.get_textpage()
                try:
                    out.append(textpage.get_text_range())
                finally:
                    textpage.close()
                    page.close()
            return out
        finally:
            doc.close()


def words(text: str) -> list[str]:
    """Lower-cased word tokens: what survives a trip through a PDF's text layer."""
    return [w.lower() for w in _WORD.findall(text)]


class PageLocator:
    """Finds the rendered page on which a piece's text starts.

    Pages are searched as one word stream, forward from the last match (document order),
    so text repeated on several pages goes to the right one; a piece not found (a text
    box the layout moved, hyphenation) stays on the page of the piece before it.
    """

    def __init__(self, texts: list[str], probe: int = 8):
        self.probe = probe
        self.starts: list[int] = []
        stream: list[str] = []
        for text in texts:
            self.starts.append(len(" ".join(stream)) + (1 if stream else 0))
            stream.extend(words(text))
        self.stream = " " + " ".join(stream) + " "
        self.cursor = 0
        self.last = 1

    def page(self, text: str) -> int:
        """The page (from 1) where ``text`` starts, moving the cursor past it."""
        key = words(text)[: self.probe]
        if not key:
            return self.last
        needle = " " + " ".join(key) + " "
        at = self.stream.find(needle, self.cursor)
        if at < 0:
            at = self.stream.find(needle)
        if at < 0:
            return self.last
        self.cursor = at + 1
        self.last = bisect.bisect_right(self.starts, at) or 1
        return self.last
