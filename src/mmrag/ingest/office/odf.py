"""OpenDocument loader (ODT, ODP, ODS) reading ``content.xml`` with the standard library.

- ODT: headings (``text:h`` outline levels) as sections, lists, tables, pictures, page
  headers/footers (``styles.xml``) and footnotes, laid out like a DOCX (:mod:`.flow`).
- ODP: ``draw:page`` n is page n; title frame as section, text boxes, tables, pictures,
  speaker notes.
- ODS: ``table:table`` n is page n, one Markdown table per sheet; hidden sheets skipped
  unless ``ingest.office_hidden_sheets``.

Cells and rows that ODF writes with a repeat count (a sheet's blank tail is one cell
repeated 16384 times, one row a million times) are expanded only where they hold text.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator
from typing import Any
from xml.etree import ElementTree as ET

from ...config import IngestSettings
from ...errors import IngestError
from ...types import Blob
from ..base import Piece, loaders
from ..containers import ODP, ODS, ZIP_ERRORS, ZIP_MEMBER_ERRORS, open_zip
from ..text import text_pieces
from .document import Structure, office_pieces
from .flow import Flow
from .pictures import picture_pieces
from .render import words
from .tables import clean_grid, table_pieces

__all__ = ["load_odf"]

log = logging.getLogger(__name__)

_NS = {"office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
       "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
       "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
       "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
       "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
       "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
       "svg": "urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0",
       "xlink": "http://www.w3.org/1999/xlink",
       "meta": "urn:oasis:names:tc:opendocument:xmlns:meta:1.0",
       "dc": "http://purl.org/dc/elements/1.1/"}
_REPEAT_CAP = 1000  # repeats expanded for a row or cell that holds text


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{_NS[prefix]}}}{local}"


_P, _H, _LIST, _ITEM, _TABLE = _q("text:p"), _q("text:h"), _q("text:list"), \
    _q("text:list-item"), _q("table:table")
_FRAME, _IMAGE, _NOTE = _q("draw:frame"), _q("draw:image"), _q("text:note")


@loaders.register("odf")
def load_odf(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """An ODT, ODP or ODS file: its structure, then (LibreOffice) its page renders."""
    ext = {ODP: "odp", ODS: "ods"}.get(blob.mime, "odt")
    yield from office_pieces(blob, settings, ext, parse_odf)


def parse_odf(blob: Blob, settings: IngestSettings) -> Structure:
    zf = open_zip(blob.data, blob.uri, max_bytes=settings.office_max_unzipped_bytes,
                  max_ratio=settings.office_max_zip_ratio)
    with zf:
        content = _xml(zf, "content.xml", blob.uri)
        meta = _metadata(zf)
        body = content.find("office:body", _NS)
        if body is None:
            raise IngestError(blob.uri, "corrupt OpenDocument: content.xml has no body")
        if (sheet := body.find("office:spreadsheet", _NS)) is not None:
            return _spreadsheet(sheet, content, zf, blob.uri, settings, meta)
        if (deck := body.find("office:presentation", _NS)) is not None:
            return _presentation(deck, content, zf, blob.uri, settings, meta)
        doc = body.find("office:text", _NS)
        if doc is None:
            raise IngestError(blob.uri, "OpenDocument of a kind this index does not read")
        return _text_document(doc, zf, blob.uri, settings, meta)


# A member that is not XML, or declares an encoding Python lacks (LookupError), or is damaged.
_XML_ERRORS: tuple[type[Exception], ...] = (ET.ParseError, LookupError, *ZIP_ERRORS)


def _xml(zf: zipfile.ZipFile, name: str, uri: str) -> ET.Element:
    try:
        return ET.fromstring(zf.read(name))
    except KeyError:
        raise IngestError(uri, f"corrupt OpenDocument: no {name}") from None
    except _XML_ERRORS as exc:
        raise IngestError(uri, f"corrupt OpenDocument: {name}: {exc}") from None


def _metadata(zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        root = ET.fromstring(zf.read("meta.xml"))
    except Exception:  # meta.xml is optional
        return {}
    out: dict[str, Any] = {}
    for key, path in (("title", "dc:title"), ("author", "meta:initial-creator"),
                      ("author", "dc:creator"), ("subject", "dc:subject"),
                      ("created", "meta:creation-date"), ("modified", "dc:date")):
        el = root.find(f"office:meta/{path}", _NS)
        text = (el.text or "").strip() if el is not None else ""
        if text and key not in out:
            out[key] = text
    return out


_MAX_SPACES = 64  # a run of spaces says no more than this many do


def inline_text(el: ET.Element) -> str:
    """A paragraph's text: spaces (``text:s``), tabs and line breaks kept; footnotes and
    frames (read separately) left out."""
    out = [el.text or ""]
    for child in el:
        if child.tag == _q("text:s"):
            # capped: text:c="400000000" made a 400 MB string of one 500-byte file
            out.append(" " * min(_count(child, "text:c"), _MAX_SPACES))
        elif child.tag == _q("text:tab"):
            out.append("\t")
        elif child.tag == _q("text:line-break"):
            out.append("\n")
        elif child.tag not in (_NOTE, _FRAME):
            out.append(inline_text(child))
        out.append(child.tail or "")
    return "".join(out)


# --- tables -----------------------------------------------------------------------------


def table_rows(table: ET.Element) -> list[list[str]]:
    """A table's cell text by grid position; spans filled, blank repeats skipped."""
    cells: dict[tuple[int, int], str] = {}
    spans: list[tuple[int, int, int, int]] = []
    r = 0
    for row in _rows(table):
        repeat = _count(row, "table:number-rows-repeated")
        values, c = [], 0
        for cell in row:
            if cell.tag not in (_q("table:table-cell"), _q("table:covered-table-cell")):
                continue
            times = _count(cell, "table:number-columns-repeated")
            text = " ".join(" ".join(inline_text(p).split()) for p in cell.iter(_P)).strip()
            if text:
                for k in range(min(times, _REPEAT_CAP)):
                    values.append((c + k, text))
                rs = _count(cell, "table:number-rows-spanned")
                cs = _count(cell, "table:number-columns-spanned")
                if rs > 1 or cs > 1:
                    spans.append((r, c, rs, cs))
            c += times
        if values:
            for k in range(min(repeat, _REPEAT_CAP)):
                for col, text in values:
                    cells[(r + k, col)] = text
        r += repeat
    for r0, c0, rs, cs in spans:
        for dr in range(min(rs, _REPEAT_CAP)):
            for dc in range(min(cs, _REPEAT_CAP)):
                cells.setdefault((r0 + dr, c0 + dc), cells[(r0, c0)])
    if not cells:
        return []
    rows = sorted({rc[0] for rc in cells})
    cols = sorted({rc[1] for rc in cells})
    return [[cells.get((i, j), "") for j in cols] for i in rows]


def _count(el: ET.Element, attr: str) -> int:
    """A repeat or span count, at least 1: a damaged "0", "-1" or "x" counts once (a zero
    repeat left a spanned cell's text unset, and the table failed with a KeyError)."""
    try:
        return max(1, int(el.get(_q(attr), "1") or 1))
    except ValueError:
        return 1


def _rows(table: ET.Element) -> Iterator[ET.Element]:
    for child in table:
        if child.tag == _q("table:table-row"):
            yield child
        elif child.tag in (_q("table:table-header-rows"), _q("table:table-rows"),
                           _q("table:table-row-group")):
            yield from _rows(child)


# --- text documents ---------------------------------------------------------------------


def _text_document(doc: ET.Element, zf: zipfile.ZipFile, uri: str,
                   settings: IngestSettings, meta: dict[str, Any]) -> Structure:
    flow = Flow()
    _walk(doc, flow, zf, 0)
    pieces = flow.pieces(uri, settings, {})
    notes = [" ".join(inline_text(p) for p in note.iter(_P)) for note in doc.iter(_NOTE)]
    for n, note in enumerate((n for n in notes if n.strip()), 1):
        pieces += _marked(f"Footnote {n}: {note}", "footnote", "Footnote", settings)
    pieces += _headers_footers(zf, settings)
    return Structure(pieces, "flow", meta)


def _walk(el: ET.Element, flow: Flow, zf: zipfile.ZipFile, depth: int | None) -> None:
    for child in el:
        tag = child.tag
        if tag == _H:
            level = _count(child, "text:outline-level")
            flow.paragraph(inline_text(child), level=level)
        elif tag == _P:
            flow.paragraph(inline_text(child), bullet=depth if depth else None)
            _frames(child, flow, zf)
        elif tag == _LIST:
            _walk(child, flow, zf, (depth or 0) + 1 if depth is not None else 1)
        elif tag == _ITEM:
            _list_item(child, flow, zf, depth or 1)
        elif tag == _TABLE:
            flow.table(table_rows(child))
        elif tag == _q("text:soft-page-break"):
            flow.new_page()
        elif tag not in (_q("office:forms"), _q("text:sequence-decls"),
                         _q("text:tracked-changes")):
            _walk(child, flow, zf, depth)


def _list_item(item: ET.Element, flow: Flow, zf: zipfile.ZipFile, depth: int) -> None:
    for child in item:
        if child.tag in (_P, _H):
            flow.paragraph(inline_text(child), bullet=depth - 1)
            _frames(child, flow, zf)
        elif child.tag == _LIST:
            _walk(child, flow, zf, depth + 1)
            continue
        else:
            _walk(child, flow, zf, depth)


def _frames(el: ET.Element, flow: Flow, zf: zipfile.ZipFile) -> None:
    for frame in el.iter(_FRAME):
        alt = " ".join((t.text or "") for t in (frame.find("svg:title", _NS),
                                               frame.find("svg:desc", _NS)) if t is not None)
        for image in frame.iter(_IMAGE):
            data = _member(zf, image.get(_q("xlink:href"), ""))
            if data:
                flow.picture(data, alt, image.get(_q("xlink:href"), "").rsplit("/", 1)[-1])


def _member(zf: zipfile.ZipFile, href: str) -> bytes:
    """An embedded file (``Pictures/...``); linked files outside the zip are not read."""
    if not href or "://" in href or href.startswith("/"):
        return b""
    try:
        return zf.read(href.removeprefix("./"))
    except ZIP_MEMBER_ERRORS:
        return b""


def _marked(text: str, part: str, section: str, settings: IngestSettings,
            page: int = 1, extra: dict[str, Any] | None = None) -> list[Piece]:
    pieces = list(text_pieces(text, None, settings, page=page,
                              metadata={"part": part, **(extra or {})}))
    for piece in pieces:
        piece.section = section
    return pieces


def _headers_footers(zf: zipfile.ZipFile, settings: IngestSettings) -> list[Piece]:
    try:
        styles = ET.fromstring(zf.read("styles.xml"))
    except Exception:  # styles.xml is optional
        return []
    pieces: list[Piece] = []
    seen: set[str] = set()
    for part, label in (("header", "Page header"), ("footer", "Page footer")):
        for el in styles.iter(_q(f"style:{part}")):
            lines = [" ".join(inline_text(p).split()) for p in el.iter(_P)]
            lines += [" ".join(inline_text(h).split()) for h in el.iter(_H)]
            text = "\n".join(ln for ln in lines if ln)
            if text and text not in seen:
                seen.add(text)
                pieces += _marked(f"{label}\n{text}", part, label, settings)
    return pieces


# --- presentations ----------------------------------------------------------------------


def _presentation(deck: ET.Element, content: ET.Element, zf: zipfile.ZipFile, uri: str,
                  settings: IngestSettings, meta: dict[str, Any]) -> Structure:
    hidden_styles = {st.get(_q("style:name")) for st in content.iter(_q("style:style"))
                     if any(pp.get(_q("presentation:visibility")) == "hidden"
                            for pp in st.iter(_q("style:drawing-page-properties")))}
    pieces: list[Piece] = []
    units: list[tuple[int, set[str]]] = []
    slides = deck.findall("draw:page", _NS)
    for number, page in enumerate(slides, 1):
        hidden = page.get(_q("draw:style-name")) in hidden_styles
        if not hidden:  # LibreOffice prints shown slides only
            units.append((number, set()))
        found = _slide(page, number, zf, uri, settings)
        for piece in found if hidden else []:
            piece.metadata["hidden"] = True
        pieces += found
    return Structure(pieces, "slides", {**meta, "slides": len(slides)}, units)


def _shapes(el: ET.Element) -> Iterator[ET.Element]:
    """A slide's shapes, groups opened, its speaker notes left out."""
    for child in el:
        if child.tag == _q("presentation:notes"):
            continue
        if child.tag == _q("draw:g"):
            yield from _shapes(child)
        else:
            yield child


def _slide(page: ET.Element, number: int, zf: zipfile.ZipFile, uri: str,
           settings: IngestSettings) -> list[Piece]:
    shapes = list(_shapes(page))
    title = ""
    for shape in shapes:
        if shape.tag == _FRAME and shape.get(_q("presentation:class")) == "title":
            title = " ".join(" ".join(inline_text(p).split()) for p in shape.iter(_P))
    base = {"slide": number, "slide_title": title, "part": "slide"}
    body: list[str] = []
    later: list[Piece] = []
    for shape in shapes:
        if shape.tag == _FRAME and shape.get(_q("presentation:class")) == "title":
            continue
        for table in shape.iter(_TABLE):
            later += table_pieces(table_rows(table), settings, page=number, section=title,
                                  metadata=base)
        for image in shape.iter(_IMAGE):
            data = _member(zf, image.get(_q("xlink:href"), ""))
            later += picture_pieces(data, uri, settings, page=number, section=title,
                                    metadata=base)
        if shape.find(".//table:table", _NS) is None:
            body += [" ".join(inline_text(p).split()) for p in shape.iter(_P)]
    text = "\n".join([title, *[b for b in body if b]]).strip()
    pieces = _marked(text, "slide", title, settings, number, base) if text else []
    notes = page.find("presentation:notes", _NS)
    if notes is not None:
        said = "\n".join(" ".join(inline_text(p).split())
                         for frame in notes.iter(_FRAME)
                         if frame.get(_q("presentation:class")) == "notes"
                         for p in frame.iter(_P)).strip()
        if said:
            pieces += _marked(f"Speaker notes\n{said}", "notes", title, settings, number,
                              {**base, "part": "notes"})
    return pieces + later


# --- spreadsheets -----------------------------------------------------------------------


def _spreadsheet(book: ET.Element, content: ET.Element, zf: zipfile.ZipFile, uri: str,
                 settings: IngestSettings, meta: dict[str, Any]) -> Structure:
    hidden_styles = {st.get(_q("style:name")) for st in content.iter(_q("style:style"))
                     if any(tp.get(_q("table:display")) == "false"
                            for tp in st.iter(_q("style:table-properties")))}
    pieces: list[Piece] = []
    units: list[tuple[int, set[str]]] = []
    sheets = book.findall("table:table", _NS)
    for number, sheet in enumerate(sheets, 1):
        name = sheet.get(_q("table:name"), f"Sheet{number}")
        hidden = sheet.get(_q("table:style-name")) in hidden_styles
        if hidden and not settings.office_hidden_sheets:
            continue
        rows = table_rows(sheet)
        base: dict[str, Any] = {"sheet": name, "sheet_index": number, "part": "sheet"}
        if hidden:
            base["hidden"] = True
        else:
            units.append((number, {w for row in clean_grid(rows) for c in row
                                   for w in words(c)}))
        pieces += table_pieces(rows, settings, page=number, section=name,
                               title=f"Sheet {name}", metadata=base)
        for image in sheet.iter(_IMAGE):
            data = _member(zf, image.get(_q("xlink:href"), ""))
            pieces += picture_pieces(data, uri, settings, page=number, section=name,
                                     metadata=base)
    return Structure(pieces, "sheets", {**meta, "sheets": len(sheets)}, units)
