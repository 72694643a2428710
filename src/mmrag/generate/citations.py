"""Citations: find ``[n]``, ``[n, m]`` and ``[n-m]`` markers in an answer and resolve them.

Generators cite sources by the numbers the prompt gave them (``[1]`` is the first hit).
Models invent numbers and ranges now and then, so only numbers that name a hit become
:class:`~mmrag.types.Citation` objects; the rest are dropped rather than shown as links
to nothing.

Each citation carries the region it quotes (``Citation.bbox``): the cited item's box,
narrowed to the table cell(s) the text before the marker quotes when the item is a PDF
table that knows its cell edges (``metadata.col_x``/``row_y``, see
:mod:`mmrag.ingest.pdf_tables`). A cell counts as quoted when its value and its row and
column headers all appear in that text, or, failing any such cell, when a value that
occurs once in the table (with a digit, or four or more characters) does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..types import Citation, Hit, Item
from .spans import parse_tables

__all__ = ["MAX_RANGE", "cited_numbers", "citations_for", "quoted_cell_box",
           "render_citations"]

# "[3]", "[1, 2]", "[2-4]", "[1,3-5]", "[2–4]" (en dash); nothing else inside the brackets,
# so "[x]" or a LaTeX "[12pt]" is not a citation.
_MARKER = re.compile(r"\[(\s*\d+(?:\s*[-–]\s*\d+)?(?:\s*[,;]\s*\d+(?:\s*[-–]\s*\d+)?)*\s*)\]")
_RANGE = re.compile(r"(\d+)\s*[-–]\s*(\d+)")
# A range wider than this is a number that happens to contain a dash, not a citation.
MAX_RANGE = 20


def cited_numbers(text: str) -> list[int]:
    """Every number cited in ``text``, in order of first appearance, without repeats."""
    seen: dict[int, None] = {}
    for marker in _MARKER.finditer(text):
        for piece in re.split(r"[,;]", marker.group(1)):
            piece = piece.strip()
            rng = _RANGE.fullmatch(piece)
            if rng:
                lo, hi = int(rng.group(1)), int(rng.group(2))
                if lo <= hi and hi - lo <= MAX_RANGE:
                    seen.update(dict.fromkeys(range(lo, hi + 1)))
            elif piece.isdigit():
                seen[int(piece)] = None
    return list(seen)


def citations_for(text: str, hits: Sequence[Hit]) -> list[Citation]:
    """The citations ``text`` makes, resolved against the numbered ``hits`` (``[1]`` is
    ``hits[0]``), in order of first mention; numbers with no hit are ignored."""
    out = []
    for n in cited_numbers(text):
        if 1 <= n <= len(hits):
            citation = Citation.from_hit(n, hits[n - 1])
            cell = quoted_cell_box(_quoted_before(text, n), hits[n - 1].item)
            citation.bbox = cell or citation.bbox
            out.append(citation)
    return out


def _quoted_before(text: str, number: int) -> str:
    """The text each ``[number]`` marker closes (back to the previous marker), joined."""
    pieces, start = [], 0
    for marker in _MARKER.finditer(text):
        if number in cited_numbers(marker.group(0)):
            pieces.append(text[start:marker.start()])
        start = marker.end()
    return " ".join(pieces)


def _has(text: str, value: str) -> bool:
    value = " ".join(value.split()).lower()
    return bool(value) and re.search(r"(?<!\w)" + re.escape(value) + r"(?!\w)", text) is not None


def quoted_cell_box(quoted: str, item: Item) -> tuple[float, float, float, float] | None:
    """The box around the cells of ``item``'s table that ``quoted`` quotes (see the module
    docstring), or None when the item is no such table or no cell is quoted."""
    col_x, row_y = item.metadata.get("col_x"), item.metadata.get("row_y")
    if not quoted or not isinstance(col_x, list) or not isinstance(row_y, list):
        return None
    tables = parse_tables(item.text)
    if len(tables) != 1 or len(col_x) != len(tables[0].header) + 1 \
            or len(row_y) != len(tables[0].rows) + 1:
        return None  # the cell edges do not describe this Markdown: no guessing
    table, text = tables[0], " ".join(quoted.split()).lower()
    cells = [(r, c) for r, row in enumerate(table.rows, 1)
             for c, value in enumerate(row[:len(table.header)])
             if c > 0 and _has(text, value) and _has(text, row[0])
             and _has(text, table.header[c])]
    if not cells:
        counts: dict[str, int] = {}
        for row in table.rows:
            for value in row:
                counts[value.lower()] = counts.get(value.lower(), 0) + 1
        cells = [(r, c) for r, row in enumerate(table.rows, 1) for c, value in enumerate(row)
                 if c < len(table.header) and counts[value.lower()] == 1 and _has(text, value)
                 and (any(ch.isdigit() for ch in value) or len(value) >= 4)]
    boxes = [(float(col_x[c]), float(row_y[r][1]), float(col_x[c + 1]), float(row_y[r][2]))
             for r, c in cells if int(row_y[r][0]) == item.page]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def render_citations(citations: Sequence[Citation]) -> str:
    """One ``[n] file, page p (item id)`` line per citation, sorted by number."""
    return "\n".join(f"{c.label()}  ({c.item_id})"
                     for c in sorted(citations, key=lambda c: c.number))
