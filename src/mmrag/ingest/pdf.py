"""PDF loader (pypdfium2): per page, a rendered ``page`` piece plus text chunks.

The loader is a generator holding one page at a time: a 500-page report streams, and a
consumer that stops early leaves no page rendered in vain. The document is closed in a
``finally`` so that an abandoned generator releases it too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from ..config import IngestSettings
from ..errors import IngestError
from ..types import Blob
from .base import Piece, loaders
from .text import text_pieces

__all__ = ["load_pdf", "pdfium_lock"]

log = logging.getLogger(__name__)

# PDFium is not thread-safe, not even across documents: every call goes through this lock.
# It is held per operation, never across a ``yield``.
pdfium_lock = threading.RLock()


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]


def _open(blob: Blob, settings: IngestSettings) -> Any:
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    password = settings.pdf_password or None
    try:
        with pdfium_lock:
            return pdfium.PdfDocument(blob.data, password=password)
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        if code == pdfium_c.FPDF_ERR_PASSWORD:
            if password:
                reason = "wrong password for encrypted PDF (ingest.pdf_password)"
            else:
                reason = "encrypted PDF; set ingest.pdf_password"
        elif code == pdfium_c.FPDF_ERR_SECURITY:
            reason = "encrypted PDF uses an unsupported security scheme"
        else:
            reason = f"corrupt PDF: {_one_line(exc)}"
        raise IngestError(blob.uri, reason) from None


def _clean(text: str) -> str:
    # pdfium ends lines with \r\n and marks soft hyphens with \x02 / \ufffe.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.replace("\x02", "").replace("\ufffe", "").replace("\x00", "")


def _read_page(pdf: Any, index: int, scale: float, uri: str) -> tuple[str, Any, float, float]:
    """Text, render (or None) and size in points of one page; the page is closed after."""
    page = pdf[index]
    try:
        width, height = page.get_size()
        text = ""
        textpage = None
        try:
            textpage = page.get_textpage()
            text = _clean(textpage.get_text_range())
        except Exception as exc:  # a bad text layer still has a render
            log.warning("%s: page %d has an unreadable text layer: %s", uri, index + 1,
                        _one_line(exc))
        finally:
            if textpage is not None:
                textpage.close()
        image = None
        bitmap = None
        try:
            bitmap = page.render(scale=scale, rev_byteorder=True)
            image = bitmap.to_pil().convert("RGB")  # a copy that outlives the bitmap
        except Exception as exc:  # skip the render, keep the page text
            log.warning("%s: page %d failed to render, skipped: %s", uri, index + 1,
                        _one_line(exc))
        finally:
            if bitmap is not None:
                bitmap.close()
        return text, image, width, height
    finally:
        page.close()


@loaders.register("pdf")
def load_pdf(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """For every page: ``Piece("page")`` with the render and full page text, then the
    page's text chunks. A page that fails to render keeps its text chunks."""
    pdf = _open(blob, settings)
    try:
        with pdfium_lock:
            count = len(pdf)
            try:
                title = (pdf.get_metadata_value("Title") or "").strip()
            except Exception:  # metadata is optional
                title = ""
        meta: dict[str, Any] = {"pages": count}
        if title:
            meta["title"] = title
        scale = settings.pdf_dpi / 72.0
        for index in range(count):
            try:
                with pdfium_lock:
                    text, image, width, height = _read_page(pdf, index, scale, blob.uri)
            except Exception as exc:  # one bad page must not lose the rest
                log.warning("%s: page %d could not be read, skipped: %s", blob.uri, index + 1,
                            _one_line(exc))
                continue
            if image is not None:
                yield Piece(modality="page", text=text, page=index + 1, image=image,
                            media_ext="png",
                            metadata={**meta, "width_pt": round(width, 2),
                                      "height_pt": round(height, 2)})
            yield from text_pieces(text, None, settings, page=index + 1, metadata=meta)
    finally:
        with pdfium_lock:
            pdf.close()
