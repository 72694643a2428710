"""PPTX loader (python-pptx): slide n is page n, with its title as section, its text in
reading order, tables as Markdown, charts as tables of their data, pictures as images,
footers and speaker notes as marked pieces.

Hidden slides are indexed (``metadata["hidden"]``) but get no render: LibreOffice does
not print them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

from ...config import IngestSettings
from ...errors import IngestError, MissingDependencyError
from ...types import Blob
from ..base import Piece, loaders
from ..containers import open_zip
from ..text import text_pieces
from .document import Structure, office_pieces, package_metadata
from .pictures import picture_pieces
from .tables import table_pieces

__all__ = ["load_pptx", "parse_pptx"]

log = logging.getLogger(__name__)


@loaders.register("pptx")
def load_pptx(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """A slide deck: each slide's pieces, then (LibreOffice) one page piece per slide."""
    yield from office_pieces(blob, settings, "pptx", parse_pptx)


def _open(blob: Blob, settings: IngestSettings) -> Any:
    try:
        import pptx
    except ImportError:
        raise MissingDependencyError("PPTX files", "office") from None
    open_zip(blob.data, blob.uri, max_bytes=settings.office_max_unzipped_bytes,
             max_ratio=settings.office_max_zip_ratio).close()
    try:
        return pptx.Presentation(io.BytesIO(blob.data))
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise IngestError(blob.uri, f"corrupt PPTX: {reason}") from None


def parse_pptx(blob: Blob, settings: IngestSettings) -> Structure:
    prs = _open(blob, settings)
    slides = _slides(prs, blob.uri)
    meta = {**package_metadata(prs), "slides": len(slides)}
    pieces: list[Piece] = []
    shown: list[tuple[int, set[str]]] = []
    for number, slide in enumerate(slides, 1):
        hidden = slide._element.get("show") in ("0", "false")
        if not hidden:
            shown.append((number, set()))
        try:
            pieces += _slide(slide, number, hidden, blob.uri, settings)
        except Exception as exc:  # one unreadable slide loses only itself
            log.warning("%s: slide %d unreadable, skipped: %s", blob.uri, number,
                        " ".join(str(exc).split())[:200])
    return Structure(pieces, "slides", meta, shown)


def _slides(prs: Any, uri: str) -> list[Any]:
    """The slides; a slide list naming a missing relationship or a part that is not a
    slide is a corrupt deck (python-pptx raised a raw KeyError/AttributeError)."""
    try:
        return list(prs.slides)
    except (AttributeError, KeyError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise IngestError(uri, f"corrupt PPTX: slide list: {reason}") from None


def _placeholder(shape: Any) -> str:
    try:
        return shape.placeholder_format.type.name if shape.is_placeholder else ""
    except Exception:  # a placeholder without a type
        return ""


def _shapes(shapes: Any) -> Iterator[Any]:
    """Shapes in reading order (top to bottom, left to right), groups opened."""
    def where(shape: Any) -> tuple[int, int]:
        return (shape.top or 0, shape.left or 0)

    for shape in sorted(shapes, key=where):
        if hasattr(shape, "shapes"):  # a group
            yield from _shapes(shape.shapes)
        else:
            yield shape


def _lines(shape: Any, bullets: bool) -> list[str]:
    out = []
    for para in shape.text_frame.paragraphs:
        text = " ".join(para.text.split())
        if text:
            lead = "  " * para.level + ("- " if bullets or para.level else "")
            out.append(lead + text)
    return out


def _slide(slide: Any, number: int, hidden: bool, uri: str,
           settings: IngestSettings) -> list[Piece]:
    title = ""
    if slide.shapes.title is not None and slide.shapes.title.has_text_frame:
        title = " ".join(slide.shapes.title.text_frame.text.split())
    base: dict[str, Any] = {"slide": number, "slide_title": title}
    if hidden:
        base["hidden"] = True
    body: list[str] = [title] if title else []
    footer: list[str] = []
    later: list[Piece] = []
    for shape in _shapes(slide.shapes):
        kind = _placeholder(shape)
        if kind in ("TITLE", "CENTER_TITLE", "VERTICAL_TITLE"):
            continue
        if shape.has_text_frame and kind in ("FOOTER", "DATE", "SLIDE_NUMBER", "HEADER"):
            footer += _lines(shape, False)
            continue
        if getattr(shape, "has_table", False):
            later += table_pieces(_table_rows(shape.table), settings, page=number,
                                  section=title, metadata={**base, "part": "slide"})
        elif getattr(shape, "has_chart", False):
            later += _chart(shape.chart, number, title, base, settings)
        elif hasattr(shape, "image"):
            later += _picture(shape, number, title, base, uri, settings)
        elif shape.has_text_frame:
            body += _lines(shape, kind in ("BODY", "OBJECT", "VERTICAL_BODY"))
    drawn = _drawn(slide.shapes)
    if drawn:
        body.append(drawn)
    pieces = _texts("\n".join(body), number, title, {**base, "part": "slide"}, settings)
    if footer:
        pieces += _texts("Slide footer\n" + "\n".join(footer), number, title,
                         {**base, "part": "footer"}, settings)
    notes = _notes(slide)
    if notes:
        pieces += _texts(f"Speaker notes\n{notes}", number, title, {**base, "part": "notes"},
                         settings)
    return pieces + later


def _drawn(shapes: Any) -> str:
    """A line naming the drawn shapes (ovals, pentagons, arrows...) and groups of a slide:
    a diagram made of shapes has no other words for what it looks like."""
    kinds: list[str] = []
    groups = 0

    def visit(group: Any) -> None:
        nonlocal groups
        for shape in group:
            if hasattr(shape, "shapes"):
                groups += 1
                visit(shape.shapes)
                continue
            try:
                kind = shape.auto_shape_type
            except Exception:  # not an auto shape (picture, text box, table...)
                continue
            name = str(getattr(kind, "name", "") or "").lower().replace("_", " ")
            if name and name not in kinds:
                kinds.append(name)

    visit(shapes)
    if not kinds or kinds == ["rectangle"] and not groups:
        return ""  # plain boxes say nothing a reader would search for
    line = "Drawn shapes: " + ", ".join(kinds)
    return line + (f"; {groups} group{'s' if groups > 1 else ''} of shapes" if groups else "")


def _texts(text: str, page: int, section: str, meta: dict[str, Any],
           settings: IngestSettings) -> list[Piece]:
    pieces = list(text_pieces(text, None, settings, page=page, metadata=meta))
    for piece in pieces:
        piece.section = section
    return pieces


def _notes(slide: Any) -> str:
    if not slide.has_notes_slide:
        return ""
    frame = slide.notes_slide.notes_text_frame
    return frame.text.strip() if frame is not None else ""


def _table_rows(table: Any) -> list[list[str]]:
    """Cell text by grid position, a merged cell's text in every position it spans."""
    rows = [[cell.text for cell in row.cells] for row in table.rows]
    for r, row in enumerate(table.rows):
        for c, cell in enumerate(row.cells):
            if cell.is_merge_origin:
                for dr in range(cell.span_height):
                    for dc in range(cell.span_width):
                        if r + dr < len(rows) and c + dc < len(rows[r + dr]):
                            rows[r + dr][c + dc] = cell.text
    return rows


def _chart(chart: Any, number: int, title: str, base: dict[str, Any],
           settings: IngestSettings) -> list[Piece]:
    """A chart as the table of its data: categories across, one row per series."""
    try:
        name = chart.chart_title.text_frame.text if chart.has_title else ""
        categories = [str(c) for c in chart.plots[0].categories]
        rows = [["series", *categories]]
        for plot in chart.plots:
            for series in plot.series:
                rows.append([series.name, *(_number(v) for v in series.values)])
    except Exception:  # a chart type python-pptx cannot read: the render still shows it
        log.debug("chart unreadable on slide %d", number, exc_info=True)
        return []
    meta = {**base, "part": "slide", "chart": True}
    return list(table_pieces(rows, settings, page=number, section=title,
                             title=f"Chart: {name}" if name else "Chart", metadata=meta))


def _number(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.15g}" if isinstance(value, float) else str(value)


def _picture(shape: Any, number: int, title: str, base: dict[str, Any], uri: str,
             settings: IngestSettings) -> list[Piece]:
    try:
        image = shape.image
        data, name = image.blob, image.filename or ""
    except Exception:  # a linked (not embedded) picture
        return []
    alt = " ".join(shape._element.xpath(".//p:cNvPr/@descr"))
    return picture_pieces(data, uri, settings, page=number, section=title, alt=alt,
                          name=name, metadata={**base, "part": "slide"})
