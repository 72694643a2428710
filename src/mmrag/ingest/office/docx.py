"""DOCX loader (python-docx): headings as sections, tables as Markdown, pictures as
images, page headers/footers, footnotes, endnotes and comments as marked pieces.

Pages: without renders, a piece's page counts the page breaks Word saved with the file
(``w:lastRenderedPageBreak``, else hard page breaks); with LibreOffice, the rendered page
its text starts on. Headers and footers repeat on every page and stay on page 1.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from typing import Any

from ...config import IngestSettings
from ...errors import IngestError, MissingDependencyError
from ...types import Blob
from ..base import Piece, loaders
from ..containers import open_zip
from ..text import text_pieces
from .document import Structure, office_pieces, package_metadata
from .flow import Flow
from .tables import clean_grid, markdown_lines

__all__ = ["load_docx", "parse_docx"]

log = logging.getLogger(__name__)

_HEADING = re.compile(r"^(?:heading|überschrift|titre|titolo|título)\s*(\d)", re.I)
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@loaders.register("docx")
def load_docx(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """A Word document: its structure, then (LibreOffice) one page piece per page."""
    yield from office_pieces(blob, settings, "docx", parse_docx)


def open_document(blob: Blob, settings: IngestSettings) -> Any:
    """A python-docx Document, after the zip directory passed the bomb check."""
    try:
        import docx
    except ImportError:
        raise MissingDependencyError("DOCX files", "office") from None
    open_zip(blob.data, blob.uri, max_bytes=settings.office_max_unzipped_bytes,
             max_ratio=settings.office_max_zip_ratio).close()
    try:
        return docx.Document(io.BytesIO(blob.data))
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise IngestError(blob.uri, f"corrupt DOCX: {reason}") from None


def parse_docx(blob: Blob, settings: IngestSettings) -> Structure:
    doc = open_document(blob, settings)
    meta = package_metadata(doc)
    if getattr(doc.element, "body", None) is None:  # the main part is not a document
        raise IngestError(blob.uri, "corrupt DOCX: the main document part has no body")
    flow = Flow()
    rendered_breaks = bool(doc.element.body.xpath(".//w:lastRenderedPageBreak"))
    for block in blocks(doc.element.body, doc._body):
        if hasattr(block, "rows"):
            flow.table(table_rows(block))
            _pictures(block._tbl, doc.part, flow)
        else:
            _paragraph(block, flow, doc.part, rendered_breaks)
    pieces = flow.pieces(blob.uri, settings, {})
    pieces += _headers_footers(doc, settings)
    pieces += _notes(doc, settings)
    return Structure(pieces, "flow", meta)


def blocks(element: Any, parent: Any) -> Iterator[Any]:
    """Paragraphs and tables in order, also those inside content controls (``w:sdt``:
    cover pages, tables of contents), which python-docx's own iteration skips."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for child in element.iterchildren():
        if child.tag == f"{_W}p":
            yield Paragraph(child, parent)
        elif child.tag == f"{_W}tbl":
            yield Table(child, parent)
        elif child.tag == f"{_W}sdt":
            for content in child.iterchildren(f"{_W}sdtContent"):
                yield from blocks(content, parent)


def _paragraph(par: Any, flow: Flow, part: Any, rendered_breaks: bool) -> None:
    p = par._p
    marker = ".//w:lastRenderedPageBreak" if rendered_breaks else ".//w:br[@w:type='page']"
    for _ in p.xpath(marker):
        flow.new_page()
    level = _heading_level(par)
    bullet = None
    ilvl = p.xpath("./w:pPr/w:numPr/w:ilvl/@w:val")
    if p.xpath("./w:pPr/w:numPr"):
        bullet = int(ilvl[0]) if ilvl and ilvl[0].isdigit() else 0
    flow.paragraph(par.text, level=level, bullet=bullet)
    _pictures(p, part, flow)


def _heading_level(par: Any) -> int:
    outline = par._p.xpath("./w:pPr/w:outlineLvl/@w:val")
    if outline and outline[0].isdigit() and int(outline[0]) < 9:
        return int(outline[0]) + 1
    try:
        name = par.style.name if par.style is not None else ""
    except Exception:  # a style id missing from styles.xml
        name = ""
    if name == "Title":
        return 1
    m = _HEADING.match(name or "")
    return int(m.group(1)) if m else 0


def _pictures(element: Any, part: Any, flow: Flow) -> None:
    """Pictures (``a:blip``) inside ``element``, with their alt text (``wp:docPr``)."""
    for drawing in element.xpath(".//w:drawing"):
        alt = " ".join(v for v in drawing.xpath(".//wp:docPr/@descr | .//wp:docPr/@title")
                       if v)
        for rid in drawing.xpath(".//a:blip/@r:embed"):
            target = part.related_parts.get(rid)
            if target is not None:
                flow.picture(target.blob, alt, str(target.partname).rsplit("/", 1)[-1])


def cell_text(cell: Any) -> str:
    """A cell's paragraphs, then any table nested in it, flattened onto one line."""
    out = []
    for block in cell.iter_inner_content():
        if hasattr(block, "rows"):
            rows = [" / ".join(c for c in row if c) for row in table_rows(block)]
            out.append("; ".join(r for r in rows if r))
        elif block.text.strip():
            out.append(block.text)
    return " ".join(out)


def table_rows(table: Any) -> list[list[str]]:
    """The table as rows of cell text; a merged cell's text is repeated in every grid
    position it covers (python-docx returns the same cell for each)."""
    rows = []
    for row in table.rows:
        try:
            cells = row.cells
        except Exception:  # a malformed gridSpan: read the cells as written
            rows.append([" ".join(tc.xpath(".//w:t/text()")) for tc in row._tr.tc_lst])
            continue
        rows.append([cell_text(c) for c in cells])
    return rows


def _block_text(container: Any) -> str:
    """A header/footer's paragraphs and tables, tables as Markdown."""
    lines: list[str] = []
    for block in container.iter_inner_content():
        if hasattr(block, "rows"):
            grid = clean_grid(table_rows(block))
            if grid:
                header, body = markdown_lines(grid)
                lines.extend([header, *body])
        elif block.text.strip():
            lines.append(block.text.strip())
    return "\n".join(lines)


def _headers_footers(doc: Any, settings: IngestSettings) -> list[Piece]:
    """Every distinct page header and footer of every section, on page 1."""
    seen: set[str] = set()
    pieces: list[Piece] = []
    for section in doc.sections:
        for part, label, attrs in (("header", "Page header",
                                    ("header", "first_page_header", "even_page_header")),
                                   ("footer", "Page footer",
                                    ("footer", "first_page_footer", "even_page_footer"))):
            for attr in attrs:
                try:
                    hf = getattr(section, attr)
                    if hf.is_linked_to_previous:
                        continue
                    text = _block_text(hf)
                except Exception:  # a broken header part loses only itself
                    log.debug("header/footer unreadable", exc_info=True)
                    continue
                if text and text not in seen:
                    seen.add(text)
                    pieces += _marked(f"{label}\n{text}", part, label, settings)
    return pieces


def _marked(text: str, part: str, section: str, settings: IngestSettings,
            extra: dict[str, Any] | None = None) -> list[Piece]:
    meta = {"part": part, **(extra or {})}
    pieces = list(text_pieces(text, None, settings, metadata=meta))
    for piece in pieces:
        piece.section = section
    return pieces


_NOTE_PARTS = (("footnote", "footnotes", "Footnote"), ("endnote", "endnotes", "Endnote"),
               ("comment", "comments", "Comment"))


def _notes(doc: Any, settings: IngestSettings) -> list[Piece]:
    """Footnotes, endnotes and comments, each a marked piece (page 1: where they are
    anchored is not resolved)."""
    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from lxml import etree

    pieces: list[Piece] = []
    for part, rel, label in _NOTE_PARTS:
        try:
            target = doc.part.part_related_by(getattr(RT, rel.upper()))
            root = etree.fromstring(target.blob)
        except (KeyError, ValueError, etree.XMLSyntaxError):
            continue
        for note in root.findall(f"{_W}{part}"):
            if note.get(f"{_W}type") in ("separator", "continuationSeparator",
                                         "continuationNotice"):
                continue
            paras = ["".join(t.text or "" for t in p.iter(f"{_W}t"))
                     for p in note.iter(f"{_W}p")]
            text = "\n".join(p for p in paras if p.strip())
            if not text:
                continue
            extra: dict[str, Any] = {"note_id": note.get(f"{_W}id", "")}
            author = note.get(f"{_W}author")
            head = f"{label} {extra['note_id']}".strip()
            if author:
                extra["comment_author"] = author
                head = f"{label} by {author}"
            pieces += _marked(f"{head}: {text}", part, label, settings, extra)
    return pieces
