"""PDF loader (pypdfium2): per page, a rendered ``page`` piece plus text chunks.

The loader is a generator holding one page at a time: a 500-page report streams, and a
consumer that stops early leaves no page rendered in vain. The document is closed in a
``finally`` so that an abandoned generator releases it too.

OCR (``ingest.ocr``): a page whose text layer :func:`~mmrag.ingest.ocr.needs_ocr` (or every
page with ``"always"``) is rendered at ``ingest.ocr_dpi`` and read by the OCR engine; the
OCR text replaces the page text and its chunks carry ``bbox`` = union of their lines' boxes
in PDF points with the origin at the page's TOP-LEFT corner (x right, y down, like the
render). Every text chunk has ``metadata["origin"]`` = ``"ocr"`` or ``"text"``. Pages are
OCR'd in a thread pool (``ingest.ocr_workers``) with a look-ahead of a few pages, so pages
still stream in order and memory stays flat.

Tables (``ingest.pdf_tables``): a page with a text layer that draws ruling lines is read
again by pdfplumber's table finder (:mod:`~mmrag.ingest.pdf_tables`); each table becomes
Markdown text pieces (``metadata.table``) after the page's chunks. A table that runs on
to the next page is held back one page and joined (``metadata.table_pages``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..config import IngestSettings
from ..errors import IngestError, MmragError
from ..timing import bind, stage
from ..types import Blob
from .base import Piece, loaders
from .figures import extract_figures, page_lines
from .ocr import (
    OCRLine,
    OCRResult,
    is_garbled,
    line_spans,
    needs_ocr,
    ocr_image,
    ocr_workers,
    union_bbox,
)
from .pdf_tables import PdfTable, TableFinder, TableJoiner, looks_ruled, table_items
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


def _render(page: Any, scale: float, uri: str, index: int) -> Any:
    """RGB render of an open page, or None (logged) when PDFium fails on it."""
    bitmap = None
    try:
        bitmap = page.render(scale=scale, rev_byteorder=True)
        return bitmap.to_pil().convert("RGB")  # a copy that outlives the bitmap
    except Exception as exc:  # skip the render, keep the page text
        log.warning("%s: page %d failed to render, skipped: %s", uri, index + 1,
                    _one_line(exc))
        return None
    finally:
        if bitmap is not None:
            bitmap.close()


def _has_images(page: Any) -> bool:
    """Whether the page draws any raster image (a scan, a chart, a screenshot)."""
    import pypdfium2.raw as pdfium_c

    try:
        for _ in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4):
            return True
    except Exception:  # unreadable objects: let the text decide
        log.debug("page object scan failed", exc_info=True)
    return False


def _read_page(pdf: Any, index: int, scale: float, uri: str,
               settings: IngestSettings | None = None
               ) -> tuple[str, Any, float, float, bool, list[Piece], OCRResult | None, bool]:
    """Text, render (or None), size in points, whether it has raster images, its
    figures (when ``settings.pdf_figures``), its text-layer lines in render pixels
    (when ``settings.visual_facets``) and whether it draws ruling worth a table search
    (when ``settings.pdf_tables``), of one page; the page is closed after."""
    page = pdf[index]
    textpage = None
    try:
        width, height = page.get_size()
        text = ""
        try:
            with stage("parse"):
                textpage = page.get_textpage()
                text = _clean(textpage.get_text_range())
        except Exception as exc:  # a bad text layer still has a render
            log.warning("%s: page %d has an unreadable text layer: %s", uri, index + 1,
                        _one_line(exc))
        with stage("render"):
            image = _render(page, scale, uri, index)
        figures: list[Piece] = []
        with stage("figures"):
            if settings is not None and settings.pdf_figures:
                # extract_figures never raises: a bad object only loses that figure
                figures = extract_figures(page, index + 1, text, settings, render=image,
                                          render_scale=scale, textpage=textpage)
            images = _has_images(page)
        lines = None
        if settings is not None and settings.visual_facets and textpage is not None:
            with stage("parse"):
                try:
                    lines = page_lines(textpage, page, scale)
                except Exception as exc:  # facets are extra; the page goes on without
                    log.debug("%s: page %d text lines unavailable: %s", uri, index + 1,
                              _one_line(exc))
        ruled = False
        if settings is not None and settings.pdf_tables and text.strip():
            with stage("tables"):
                ruled = looks_ruled(page, width, height)  # never raises
        return text, image, width, height, images, figures, lines, ruled
    finally:
        if textpage is not None:
            textpage.close()
        page.close()


def _ocr_render(pdf: Any, index: int, image: Any, scale: float, ocr_scale: float,
                uri: str) -> Any:
    """The page at OCR resolution: the page render itself when it is large enough."""
    if image is not None and scale >= ocr_scale:
        return image
    page = pdf[index]
    try:
        with stage("render"):
            return _render(page, ocr_scale, uri, index)
    finally:
        page.close()


def _wants_ocr(text: str, area: float, images: bool) -> bool:
    """``needs_ocr``, except that a short but clean text layer on a page without raster
    images is trusted: there is nothing else to read on it (a title page, "page 7")."""
    if not needs_ocr(text, area):
        return False
    return images or not text.strip() or is_garbled(text)


def _ocr_page(img: Any, settings: IngestSettings, uri: str, page: int) -> OCRResult | None:
    try:
        with stage("ocr"):
            return ocr_image(img, settings)
    except MmragError:
        raise  # misconfiguration (unknown engine, missing extra) must be seen
    except Exception as exc:  # one page the engine chokes on keeps its text layer
        log.warning("%s: page %d OCR failed, text layer kept: %s", uri, page, _one_line(exc))
        return None


def _page_pieces(index: int, text: str, image: Any, ocr_img: Any, ocr: OCRResult | None,
                 width: float, height: float, meta: dict[str, Any],
                 settings: IngestSettings, text_lines: OCRResult | None = None
                 ) -> Iterator[Piece]:
    page_no = index + 1
    origin = "text"
    lines: list[Any] = []
    spans: list[tuple[int, int]] = []
    if ocr is not None and (ocr.lines or settings.ocr == "always"):
        text, spans = line_spans(ocr.lines)
        lines, origin = ocr.lines, "ocr"
    if image is not None:
        extra: dict[str, Any] = {"width_pt": round(width, 2), "height_pt": round(height, 2),
                                 "origin": origin}
        if origin == "ocr" and ocr is not None and ocr.rotation:
            extra["ocr_rotation"] = ocr.rotation
        seen = _in_render(ocr, ocr_img, image) if origin == "ocr" else text_lines
        yield Piece(modality="page", text=text, page=page_no, image=image, media_ext="png",
                    metadata={**meta, **extra}, ocr=seen)
    chunk_meta = {**meta, "origin": origin}
    with stage("chunk"):
        chunks = list(text_pieces(text, None, settings, page=page_no, metadata=chunk_meta))
    if origin != "ocr":
        yield from chunks
        return
    sx, sy = width / ocr_img.width, height / ocr_img.height

    def to_page(x: float, y: float) -> tuple[float, float]:
        return (round(min(max(x * sx, 0.0), width), 2), round(min(max(y * sy, 0.0), height), 2))

    for piece in chunks:
        piece.bbox = union_bbox(lines, spans, piece.chunk_start, piece.chunk_end, to_page)
        yield piece


def _in_render(ocr: OCRResult | None, ocr_img: Any, image: Any) -> OCRResult | None:
    """OCR lines moved from the OCR render's pixels to the page render's."""
    if ocr is None or ocr_img is None or ocr_img is image:
        return ocr
    sx, sy = image.width / ocr_img.width, image.height / ocr_img.height
    return OCRResult([OCRLine(ln.text, (ln.bbox[0] * sx, ln.bbox[1] * sy, ln.bbox[2] * sx,
                                        ln.bbox[3] * sy), ln.confidence) for ln in ocr.lines],
                     ocr.rotation, ocr.engine)


@loaders.register("pdf")
def load_pdf(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """For every page: ``Piece("page")`` with the render and full page text, then the
    page's text chunks. A page that fails to render keeps its text chunks."""
    pdf = _open(blob, settings)
    pool: ThreadPoolExecutor | None = None
    finder = TableFinder(blob.data, blob.uri, settings.pdf_password)
    joiner = TableJoiner()
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
        ocr_scale = settings.ocr_dpi / 72.0
        mode = settings.ocr
        workers = ocr_workers(settings)
        window = max(2, min(4, workers + 1))  # pages read ahead while OCR runs
        pending: deque[tuple[int, tuple[Any, ...], Future[OCRResult | None] | None]] = deque()
        for index in range(count):
            try:
                with pdfium_lock:
                    text, image, width, height, images, figures, lines, ruled = _read_page(
                        pdf, index, scale, blob.uri, settings)
                    ocr_img = None
                    if mode == "always" or (mode == "auto"
                                            and _wants_ocr(text, width * height, images)):
                        ocr_img = _ocr_render(pdf, index, image, scale, ocr_scale, blob.uri)
            except Exception as exc:  # one bad page must not lose the rest
                log.warning("%s: page %d could not be read, skipped: %s", blob.uri, index + 1,
                            _one_line(exc))
                continue
            tables: list[PdfTable] = []
            if ruled:
                with stage("tables"):  # pdfminer, not pdfium: outside the lock
                    tables = finder.find(index)
            future = None
            if ocr_img is not None:
                if pool is None:
                    pool = ThreadPoolExecutor(workers, thread_name_prefix="mmrag-ocr")
                future = pool.submit(bind(_ocr_page), ocr_img, settings, blob.uri, index + 1)
            pending.append((index, (text, image, ocr_img, width, height, figures, lines,
                                    tables), future))
            while pending and (len(pending) > window or pending[0][2] is None
                               or pending[0][2].done()):
                yield from _emit(pending.popleft(), meta, settings, joiner)
        while pending:
            yield from _emit(pending.popleft(), meta, settings, joiner)
        for table in joiner.flush():
            yield from table_items(table, settings, meta)
    finally:
        finder.close()
        if pool is not None:  # an abandoned generator drops the queued OCR work
            pool.shutdown(wait=False, cancel_futures=True)
        with pdfium_lock:
            pdf.close()


def _emit(item: tuple[int, tuple[Any, ...], Future[OCRResult | None] | None],
          meta: dict[str, Any], settings: IngestSettings,
          joiner: TableJoiner) -> Iterator[Piece]:
    index, (text, image, ocr_img, width, height, figures, lines, tables), future = item
    ocr = future.result() if future is not None else None
    yield from _page_pieces(index, text, image, ocr_img, ocr, width, height, meta, settings,
                            lines)
    # an OCR'd page's text layer was unusable: its tables are not trusted either
    found = tables if ocr is None or not ocr.lines else []
    for table in joiner.feed(index + 1, found):
        yield from table_items(table, settings, meta)
    for fig in figures:
        yield _with_ocr(fig, meta, settings)


def _with_ocr(fig: Piece, meta: dict[str, Any], settings: IngestSettings) -> Piece:
    """A figure crop with the document metadata and, for a raster figure, its OCR text:
    vector figures already carry their labels from the text layer, raster ones don't."""
    fig.metadata = {**meta, **fig.metadata}
    if settings.ocr == "never" or fig.metadata.get("origin") != "pdf-image" or fig.image is None:
        return fig
    try:
        with stage("ocr"):
            found = ocr_image(fig.image, settings)
    except MmragError:
        raise
    except Exception as exc:  # the figure stays findable by its caption
        log.warning("figure OCR failed on page %d: %s", fig.page, _one_line(exc))
        return fig
    if found is not None and found.text.strip():
        fig.text = f"{fig.text}\n{found.text}".strip()
        fig.metadata["ocr_text"] = found.text
        fig.ocr = found  # a raster chart's labels exist only as pixels
    return fig
