"""A word document's body in reading order: prose with headings, and the tables and
pictures anchored in it, turned into pieces.

Word processors (DOCX, ODT) give paragraphs, headings, tables and pictures in order. The
prose is written into one text, so chunks keep character offsets and the heading trail
becomes their ``section`` (as for Markdown); tables and pictures become their own pieces
at their place in that text, under the section they sit in. Page numbers are those the
file knows (page breaks); a rendered PDF replaces them later (:mod:`.document`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from ...config import IngestSettings
from ..base import Piece
from ..chunk import section_spans
from ..text import text_pieces
from .pictures import picture_pieces
from .tables import table_pieces

__all__ = ["Flow"]


@dataclass(slots=True)
class _Anchor:
    offset: int
    page: int
    kind: str  # "table" | "picture"
    payload: Any
    alt: str = ""
    name: str = ""


@dataclass
class Flow:
    """Collects a body; :meth:`pieces` turns it into text, table and picture pieces."""

    parts: list[str] = field(default_factory=list)
    size: int = 0
    page: int = 1
    headings: list[tuple[int, int, int, str]] = field(default_factory=list)
    anchors: list[_Anchor] = field(default_factory=list)
    page_starts: list[int] = field(default_factory=lambda: [0])

    def new_page(self) -> None:
        self.page += 1
        self.page_starts.append(self.size)

    def paragraph(self, text: str, level: int = 0, bullet: int | None = None) -> None:
        """A paragraph; ``level`` 1-6 makes it a heading, ``bullet`` a list item at that
        depth (written ``- item`` so the list shape survives in the text)."""
        text = " ".join(text.split())
        if not text:
            return
        if bullet is not None and not level:
            text = "  " * bullet + "- " + text
        start = self.size
        self._write(text + "\n\n")
        if level:
            self.headings.append((start, self.size, min(level, 6), text))

    def table(self, rows: list[list[str]]) -> None:
        if rows:
            self.anchors.append(_Anchor(self.size, self.page, "table", rows))

    def picture(self, data: bytes, alt: str = "", name: str = "") -> None:
        self.anchors.append(_Anchor(self.size, self.page, "picture", data, alt, name))

    def _write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)

    def _page_at(self, offset: int) -> int:
        return max(1, bisect.bisect_right(self.page_starts, offset))

    def pieces(self, uri: str, settings: IngestSettings,
               metadata: dict[str, Any] | None = None) -> list[Piece]:
        """Prose chunks, tables and pictures in document order, marked ``part = body``."""
        meta = {**(metadata or {}), "part": "body"}
        text = "".join(self.parts)
        spans = section_spans(text, self.headings) if self.headings else \
            [(0, len(text), "")]
        starts = [s for s, _, _ in spans]

        def section_at(offset: int) -> str:
            i = bisect.bisect_right(starts, offset) - 1
            return spans[i][2] if i >= 0 else ""

        ordered: list[tuple[int, int, Piece]] = []
        for piece in text_pieces(text, spans, settings, metadata=meta):
            piece.page = self._page_at(piece.chunk_start)
            ordered.append((piece.chunk_start, 1, piece))
        for anchor in self.anchors:
            # an anchor sits after the text before it: a table that ends a section is
            # that section's, not the next heading's
            section = section_at(max(anchor.offset - 1, 0))
            if anchor.kind == "table":
                found = list(table_pieces(anchor.payload, settings, page=anchor.page,
                                          section=section, metadata=meta,
                                          offset=anchor.offset))
            else:
                found = picture_pieces(anchor.payload, uri, settings, page=anchor.page,
                                       section=section, alt=anchor.alt, name=anchor.name,
                                       metadata=meta)
                for piece in found:
                    piece.chunk_start = piece.chunk_end = anchor.offset
            ordered.extend((anchor.offset, 0, p) for p in found)
        ordered.sort(key=lambda t: (t[0], t[1]))
        return [p for _, _, p in ordered]
