"""What every office loader shares: parse the structure, render the pages, put both on
the same page numbers.

A loader parses its format into a :class:`Structure` (text, table and picture pieces
with their pages as the format knows them) and hands it to :func:`office_pieces`, which
asks LibreOffice for a PDF (unless renders are off or it is missing: then the structure
alone is indexed, and a warning says so once), places the pieces on the rendered pages
where the format has no pages of its own, and appends one ``page`` piece per page.

- ``flow`` (word documents): a piece's page is the rendered page its text starts on.
- ``slides``: the PDF has one page per shown slide; slide n stays page n.
- ``sheets``: the PDF has one or more pages per printed sheet, found by their words;
  sheet n is page n, rendered by its first PDF page, with the text of all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from ...config import IngestSettings
from ...errors import IngestError
from ...types import Blob
from ..base import Piece
from .convert import convert, soffice, warn_missing
from .render import PageLocator, page_pieces, page_texts, words

__all__ = ["Structure", "core_metadata", "office_pieces"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Structure:
    """A parsed office document, before renders.

    ``units`` lists, for slides, the page numbers of the slides LibreOffice prints (hidden
    ones are not), and for sheets the page number and the words of each sheet it may
    print, in order.
    """

    pieces: list[Piece]
    layout: Literal["flow", "slides", "sheets"]
    metadata: dict[str, Any] = field(default_factory=dict)
    units: list[tuple[int, set[str]]] = field(default_factory=list)


def core_metadata(props: Any) -> dict[str, Any]:
    """Author, title, subject, keywords, created and modified from OOXML core properties
    (python-docx, python-pptx and openpyxl all expose these names); empty ones dropped."""
    out: dict[str, Any] = {}
    for key, attr in (("author", "author"), ("author", "creator"), ("title", "title"),
                      ("subject", "subject"), ("keywords", "keywords"),
                      ("last_modified_by", "last_modified_by"),
                      ("last_modified_by", "lastModifiedBy"),
                      ("created", "created"), ("modified", "modified")):
        value = getattr(props, attr, None)
        if isinstance(value, (datetime, date)):
            value = value.isoformat()
        if isinstance(value, str) and value.strip() and key not in out:
            out[key] = value.strip()
    return out


def package_metadata(document: Any) -> dict[str, Any]:
    """:func:`core_metadata` of a python-docx/python-pptx document, or {} when its
    relationships lead to a part that is not core properties (the fuzzer's damaged
    packages raised a raw AttributeError): the metadata is lost, not the document."""
    try:
        props = document.core_properties
    except (AttributeError, KeyError, ValueError, TypeError):
        return {}
    return core_metadata(props)


def office_pieces(blob: Blob, settings: IngestSettings, ext: str,
                  parse: Callable[[Blob, IngestSettings], Structure]) -> Iterator[Piece]:
    """The pieces of one office document: its structure, then its page renders."""
    structure = parse(blob, settings)  # bad input fails here, before LibreOffice runs
    pdf = _render_pdf(blob, settings, ext)
    if pdf is not None:
        texts = page_texts(pdf)
        if structure.layout == "flow":
            _place_flow(structure.pieces, texts)
    for piece in structure.pieces:
        piece.metadata = {**structure.metadata, **piece.metadata}
        yield piece
    if pdf is None:
        return
    if structure.layout == "flow":
        numbers: list[int | None] = list(range(1, len(texts) + 1))
    elif structure.layout == "slides":
        numbers = _slide_pages(structure.units, len(texts))
    else:
        numbers = _sheet_pages(structure.units, texts)
    yield from _renders(pdf, blob.uri, settings, numbers, structure.metadata)


def _render_pdf(blob: Blob, settings: IngestSettings, ext: str) -> bytes | None:
    """LibreOffice's PDF of the document, or None (renders off, LibreOffice missing, or
    a conversion error: the structure is still indexed). A timeout fails the document."""
    if not settings.office_renders:
        return None
    if soffice(settings) is None:
        warn_missing()
        return None
    try:
        return convert(blob.data, ext, "pdf", blob.uri, settings)
    except IngestError as exc:
        if "timed out" in exc.reason:
            raise
        log.warning("%s: no page renders: %s", blob.uri, exc.reason)
        return None


def _place_flow(pieces: list[Piece], texts: list[str]) -> None:
    """Move each body piece to the rendered page its text starts on; pictures follow the
    text before them; headers, footers, notes and comments stay where they are."""
    locator = PageLocator(texts)
    for piece in pieces:
        if piece.metadata.get("part", "body") != "body":
            continue
        if piece.modality == "image":
            piece.page = locator.last
            continue
        probe = piece.text
        if piece.metadata.get("table"):
            probe = " ".join(ln for ln in probe.splitlines() if not ln.startswith("|-"))
        piece.page = locator.page(probe)
        piece.metadata["page_source"] = "rendered"


def _slide_pages(units: list[tuple[int, set[str]]], count: int) -> list[int | None]:
    shown = [n for n, _ in units]
    if len(shown) != count:
        log.debug("rendered %d pages for %d shown slides; numbering by order", count,
                  len(shown))
        shown = list(range(1, count + 1))
    return list(shown)


def _sheet_pages(units: list[tuple[int, set[str]]], texts: list[str]) -> list[int | None]:
    """The sheet page number of each PDF page: sheets print in order, so each PDF page
    goes to the sheet at or after the previous page's whose words it shares most."""
    out: list[int | None] = []
    at = 0
    for text in texts:
        found = set(words(text))
        if not units:
            out.append(None)
            continue
        best, best_score = at, -1.0
        for k in range(at, len(units)):
            vocab = units[k][1]
            score = len(found & vocab) / max(len(found), 1)
            if score > best_score + 1e-9:
                best, best_score = k, score
        at = best
        out.append(units[best][0] if found else None)
    return out


def _renders(pdf: bytes, uri: str, settings: IngestSettings, numbers: list[int | None],
             meta: dict[str, Any]) -> Iterator[Piece]:
    """One ``page`` piece per page number: the first PDF page that maps to it gives the
    render, later ones (a sheet printed on several pages) add their text."""
    current: Piece | None = None
    for index, piece in enumerate(page_pieces(pdf, uri, settings)):
        number = numbers[index] if index < len(numbers) else None
        if number is None:
            continue
        if current is not None and current.page == number:
            current.text = f"{current.text}\n{piece.text}".strip()
            current.metadata["pdf_pages"] += 1
            continue
        if current is not None:
            yield current
        piece.page = number
        piece.metadata = {**piece.metadata, **meta, "rendered_by": "libreoffice",
                          "pdf_pages": 1}
        piece.metadata.pop("pages", None)
        current = piece
    if current is not None:
        yield current
