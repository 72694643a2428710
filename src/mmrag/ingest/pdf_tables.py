"""Tables in a PDF's text layer as Markdown table items, found by pdfplumber.

pypdfium2 gives the PDF loader text and drawing objects but no table structure, so a
table reaches the index as a run of numbers that no longer says which column they were
in. pdfplumber's table finder rebuilds the cells from the ruling lines. It parses the
page a second time (pdfminer, pure Python: 10-100 ms a page), so it only runs on pages
whose pdfium path objects look like ruling (:func:`looks_ruled`, well under a
millisecond): a page of prose pays nothing.

What counts as a table:

- a ruled grid (pdfplumber's ``lines`` strategy), cell borders drawn as lines or rects;
- a rule band, as LaTeX ``booktabs`` draws it: three or more horizontal rules of one
  width and no side borders. The band gets side edges; its columns come from its vertical
  rules, else from the alignment of its words;
- rows without a rule between them arrive as one cell holding k lines in every column;
  in a table of at most four such rows they are split into k rows;
- a merged cell's text is repeated in every cell it covers (as the office loaders do);
- a grid with fewer than two rows or columns holding text, or whose cells hold prose
  (a page laid out in boxes), is not a table.

Each table goes through :func:`~mmrag.ingest.office.tables.table_pieces`: Markdown, long
tables cut between rows with the header row repeated, ``metadata.table``. A table that
ends its page and whose columns (count and x edges) reappear in a table starting the
next page is joined into one: its items sit on the page of their first body row, and
all carry ``metadata.table_pages``. A repeated header row on the second page is dropped.

Coordinates are those of :mod:`~mmrag.ingest.figures`: PDF points, origin at the top-left
of the displayed page (crop box), y down. Cell boxes stay cheap and bounded: every item
has ``col_x`` (the column edges) and ``row_y`` (``[page, top, bottom]`` of each of its
rows, header first), so cell (r, c) is ``col_x[c], row_y[r][1], col_x[c+1], row_y[r][2]``.
"""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from ..config import IngestSettings
from .base import Piece
from .office.tables import table_pieces

__all__ = ["PdfTable", "TableFinder", "TableJoiner", "looks_ruled", "table_items"]

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]  # x0, y0, x1, y1; top-left origin, points

_PAGEOBJ_PATH = 2     # FPDF_PAGEOBJ_PATH; literal so importing costs no pdfium
_THIN = 3.0           # a path thinner than this (points) is a rule
_MIN_RULE = 15.0      # shorter strokes are glyph-like decoration, not ruling
_RULED = 3            # rule score at which a page is worth pdfplumber's parse
_MAX_CELL_CHARS = 160  # mean text per filled cell above this: boxes of prose, not data
_MAX_SPLIT_ROWS = 4   # only a sparsely ruled table has rows that hold several text rows
_MIN_FILLED = 0.4     # share of grid positions with text; boxes in a diagram leave more empty
_EDGE_TOL = 4.0       # column edges of two table parts match within this (points)
_EDGE_LINES = 2       # text lines allowed between a table and its page's edge (header)
_GAP = 5.0            # a column gap in a rule band: points free of words in every line
_WORDS = {"x_tolerance": 1.5}  # table type is tight: 3 pt (the default) glues words


@dataclass(slots=True)
class PdfTable:
    """A table's cells (header row first) and where each row lies."""

    grid: list[list[str]]
    rows: list[tuple[int, float, float]]  # page, top, bottom of each grid row
    xs: list[float]                       # column edges, len(grid[0]) + 1
    pages: list[int]
    lines_above: int = 0  # text lines above the table on its first page
    lines_below: int = 0  # text lines below it on its last page


# -- the cheap pre-check (pdfium, under the caller's pdfium lock) ---------------------------

def looks_ruled(page: Any, width: float, height: float) -> bool:
    """Whether a pdfium page draws enough ruling to hold a table: thin rules count one,
    a box one, a box drawn with many segments (a whole grid in one path) three."""
    score = 0
    try:
        for obj in page.get_objects(filter=[_PAGEOBJ_PATH], max_depth=4):
            score += _rule_score(obj, width, height)
            if score >= _RULED:
                return True
    except Exception:  # an unreadable object: no tables rather than no page
        log.debug("path scan failed", exc_info=True)
    return False


def _rule_score(obj: Any, width: float, height: float) -> int:
    left, bottom, right, top = obj.get_bounds()
    w, h = right - left, top - bottom
    if w >= 0.9 * width and h >= 0.9 * height:  # a page background
        return 0
    if (h <= _THIN and w >= _MIN_RULE) or (w <= _THIN and h >= 6):
        return 1
    if w < _MIN_RULE or h < 6:
        return 0
    return 3 if _segments(obj) >= 10 else 1


def _segments(obj: Any) -> int:
    import pypdfium2.raw as pdfium_c

    return int(pdfium_c.FPDFPath_CountSegments(obj.raw))


# -- finding tables on one page (pdfplumber) ------------------------------------------------

@functools.cache
def _warn_missing() -> None:
    """Once per process: the setting is on by default, the extra may not be installed."""
    log.warning("PDF tables need pdfplumber: pip install 'mmrag[tables]' "
                "(or set ingest.pdf_tables = false)")


class TableFinder:
    """pdfplumber over the PDF's bytes, opened on the first ruled page and kept open for
    the rest of the document. :meth:`find` never raises: a table that breaks the finder
    costs that page its table items, never its text."""

    def __init__(self, data: bytes, uri: str, password: str | None = None) -> None:
        self._data, self._uri, self._password = data, uri, password
        self._pdf: Any = None
        self._broken = False

    def find(self, index: int) -> list[PdfTable]:
        """The tables of page ``index`` (0-based), top to bottom."""
        pdf = self._open()
        if pdf is None:
            return []
        page = None
        try:
            page = pdf.pages[index]
            return page_tables(page, index + 1)
        except Exception as exc:  # bad tables never break the page
            log.warning("%s: page %d: table finding failed, page kept without tables: %s",
                        self._uri, index + 1, _one_line(exc))
            return []
        finally:
            if page is not None:
                page.close()  # drops pdfplumber's per-page object cache

    def close(self) -> None:
        if self._pdf is not None:
            self._pdf.close()
            self._pdf = None

    def _open(self) -> Any:
        if self._pdf is not None or self._broken:
            return self._pdf
        try:
            import pdfplumber
        except ImportError:
            self._broken = True
            _warn_missing()
            return None
        try:
            self._pdf = pdfplumber.open(io.BytesIO(self._data), password=self._password or "")
        except Exception as exc:
            self._broken = True
            log.warning("%s: tables skipped, pdfplumber cannot open it: %s", self._uri,
                        _one_line(exc))
        return self._pdf


def page_tables(page: Any, page_no: int) -> list[PdfTable]:
    """Tables of one pdfplumber page: ruled grids and rule bands, top to bottom."""
    bands = _rule_bands(page)
    settings: dict[str, Any] = {}
    if bands:
        settings["explicit_vertical_lines"] = [e for b, _ in bands for e in _side_edges(b)]
    tables = _kept(page, page_no, page.find_tables(settings))
    for band, rules in bands:  # a band without vertical rules: columns from word gaps
        if not any(_overlap(_box(t), band) for t in tables):
            tables += _kept(page, page_no, _gap_columns(page, band, rules), by_gaps=True)
    tables.sort(key=lambda t: t.rows[0][1])
    _count_lines(page, tables)
    return tables


def _kept(page: Any, page_no: int, found: Sequence[Any], by_gaps: bool = False
          ) -> list[PdfTable]:
    """The finder's tables that hold up as tables; rows of k-line cells are split only
    in sparsely ruled ones (a fully ruled table's multi-line cells are wrapped text).
    Columns guessed from word gaps must leave no cell with several lines after the
    split: lines that do not pair up across columns are a chart's labels, not rows."""
    kept = []
    for found_table in found:
        table = _table(found_table, page, page_no, len(found_table.rows) <= _MAX_SPLIT_ROWS)
        if table is not None and not (by_gaps and any("\n" in c for r in table.grid
                                                     for c in r)):
            kept.append(table)
    return kept


def _box(table: PdfTable) -> Box:
    return table.xs[0], table.rows[0][1], table.xs[-1], table.rows[-1][2]


def _rule_bands(page: Any) -> list[tuple[Box, list[float]]]:
    """Boxes spanned by three or more horizontal rules of one extent (booktabs tables),
    each with its rules' y."""
    groups: dict[tuple[int, int], list[float]] = {}
    for top, x0, x1 in _rules(page):
        if x1 - x0 >= 3 * _MIN_RULE:
            groups.setdefault((round(x0 / 2), round(x1 / 2)), []).append(top)  # 2 pt buckets
    bands = []
    for (x0, x1), tops in groups.items():
        ys = _distinct(sorted(tops))
        if len(ys) >= 3 and ys[-1] - ys[0] <= 0.6 * float(page.height):
            bands.append(((x0 * 2.0, ys[0], x1 * 2.0, ys[-1]), ys))
    return bands


def _distinct(ys: list[float]) -> list[float]:
    """Sorted rule heights with near-duplicates dropped: a rule drawn as a thin filled
    rectangle gives an edge at its top and another at its bottom."""
    out: list[float] = []
    for y in ys:
        if not out or y - out[-1] > 2.0:
            out.append(y)
    return out


def _rules(page: Any) -> list[tuple[float, float, float]]:
    """Horizontal rules as ``(y, x0, x1)``, collinear pieces joined: a grid drawn one
    cell border at a time has the same rules as one drawn in full strokes."""
    edges = sorted((round(float(e["top"]), 1), float(e["x0"]), float(e["x1"]))
                   for e in page.horizontal_edges)
    rules: list[tuple[float, float, float]] = []
    for y, x0, x1 in edges:
        if rules and abs(rules[-1][0] - y) <= 0.5 and x0 <= rules[-1][2] + 1:
            rules[-1] = (rules[-1][0], rules[-1][1], max(rules[-1][2], x1))
        elif not rules or (y, x0, x1) != rules[-1]:
            rules.append((y, x0, x1))
    # one y per rule: a rect's top and a line on the same y count once
    return list({(y, round(x0), round(x1)): (y, x0, x1) for y, x0, x1 in rules}.values())


def _side_edges(band: Box) -> list[dict[str, Any]]:
    x0, top, x1, bottom = band
    return [{"object_type": "line", "x0": x, "x1": x, "top": top, "bottom": bottom,
             "width": 0.0, "height": bottom - top} for x in (x0, x1)]


def _gap_columns(page: Any, band: Box, rules: list[float]) -> list[Any]:
    """Tables in a rule band whose columns are only whitespace: a column edge goes
    through every gap that no word of the body (below the header rule) crosses."""
    x0, top, x1, bottom = band
    crop = page.crop((x0 - 1, top - 1, x1 + 1, bottom + 1), strict=False)
    words = crop.extract_words(**_WORDS)
    body = [w for w in words if w["top"] >= rules[1]] or words
    edges = [x0, *_gaps(sorted((w["x0"], w["x1"]) for w in body)), x1]
    if len(edges) < 3:
        return []
    return list(crop.find_tables({
        "vertical_strategy": "explicit", "explicit_vertical_lines": edges,
        "horizontal_strategy": "lines"}))


def _gaps(spans: list[tuple[float, float]]) -> list[float]:
    """Middles of the gaps of at least ``_GAP`` points between merged x spans."""
    mids: list[float] = []
    end = spans[0][1] if spans else 0.0
    for a, b in spans[1:]:
        if a - end >= _GAP:
            mids.append((a + end) / 2)
        end = max(end, b)
    return mids


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] + 1 and b[1] < a[3] + 1


def _table(found: Any, page: Any, page_no: int, split: bool) -> PdfTable | None:
    """A pdfplumber table as a clean grid in the page frame, or None when it is not one."""
    grid, covered, ys, xs = _resolved(found)
    if not _plausible(grid, covered):
        return None
    grid, ys, xs = _merge_spanned(grid, covered, ys, xs)
    rows = list(pairwise(ys))
    if split:
        grid, rows = _split_rows(grid, rows)
    grid, rows, xs = _drop_empty(grid, rows, xs)
    if not _is_data(grid):
        return None
    dx, dy = float(page.cropbox[0]), float(page.cropbox[1])  # mediabox → crop box frame
    return PdfTable(grid=[[_one_cell(c) for c in row] for row in grid],
                    rows=[(page_no, round(t - dy, 2), round(b - dy, 2)) for t, b in rows],
                    xs=[round(x - dx, 2) for x in xs], pages=[page_no])


def _one_cell(text: str) -> str:
    """A cell's lines, spaces normalised; the Markdown joins them into one line."""
    return "\n".join(" ".join(line.split()) for line in text.split("\n") if line.strip())


def _resolved(found: Any
              ) -> tuple[list[list[str]], list[list[bool]], list[float], list[float]]:
    """Cell texts with merged cells resolved, which positions a spanning cell covers,
    the row edges and the column edges.

    pdfplumber leaves ``None`` where a spanning cell covers a grid position; the text of
    the cell that covers it is repeated there, so every row reads on its own."""
    texts = found.extract(**_WORDS)
    rows = found.rows
    _, _, x1, bottom = found.bbox
    xs = sorted({c[0] for c in found.cells}) + [x1]
    ys = sorted({c[1] for c in found.cells}) + [bottom]
    owner = {cell: (texts[r][c] or "") for r, row in enumerate(rows)
             for c, cell in enumerate(row.cells) if cell is not None}
    grid = [[owner[cell] if cell is not None else
             _covering(owner, (xs[c] + xs[c + 1]) / 2, (ys[r] + ys[r + 1]) / 2)
             for c, cell in enumerate(row.cells)] for r, row in enumerate(rows)]
    covered = [[cell is None for cell in row.cells] for row in rows]
    return grid, covered, ys, xs


def _plausible(grid: list[list[str]], covered: list[list[bool]]) -> bool:
    """Whether a grid reads like a table rather than a diagram's boxes: most positions
    hold text, and most of that text is the cells' own, not a spanning cell's copy (a
    chart's bars cut one label box into hundreds of positions)."""
    total = sum(len(row) for row in grid)
    filled = sum(1 for row in grid for c in row if c.strip())
    copied = sum(1 for row, cov in zip(grid, covered, strict=True)
                 for c, k in zip(row, cov, strict=True) if k and c.strip())
    return total > 0 and filled >= _MIN_FILLED * total and 2 * copied <= filled


def _covering(owner: dict[Box, str], x: float, y: float) -> str:
    for (x0, top, x1, bottom), text in owner.items():
        if x0 <= x <= x1 and top <= y <= bottom:
            return text
    return ""


def _split_rows(grid: list[list[str]], rows: list[tuple[float, float]]
                ) -> tuple[list[list[str]], list[tuple[float, float]]]:
    """Rows that hold k text lines in every filled cell become k rows: a table ruled only
    above and below its body arrives as one row of k-line cells."""
    out_grid: list[list[str]] = []
    out_rows: list[tuple[float, float]] = []
    for cells, (top, bottom) in zip(grid, rows, strict=False):
        parts = [c.split("\n") if c.strip() else [] for c in cells]
        counts = {len(p) for p in parts if p}
        k = counts.pop() if len(counts) == 1 else 1
        if k < 2 or sum(1 for p in parts if p) < 2:
            out_grid.append(cells)
            out_rows.append((top, bottom))
            continue
        step = (bottom - top) / k
        for i in range(k):
            out_grid.append([p[i] if p else "" for p in parts])
            out_rows.append((top + i * step, top + (i + 1) * step))
    return out_grid, out_rows


def _drop_empty(grid: list[list[str]], rows: list[tuple[float, float]], xs: list[float]
                ) -> tuple[list[list[str]], list[tuple[float, float]], list[float]]:
    """Without the rows and columns that hold no text; an empty column's width goes to
    its right neighbour (the last column's to its left one)."""
    keep_r = [i for i, row in enumerate(grid) if any(c.strip() for c in row)]
    grid, rows = [grid[i] for i in keep_r], [rows[i] for i in keep_r]
    if not grid:
        return [], [], xs
    keep_c = [j for j in range(len(grid[0])) if any(row[j].strip() for row in grid)]
    if not keep_c:
        return [], [], xs
    edges = [xs[0]] + [xs[j + 1] for j in keep_c[:-1]] + [xs[-1]]
    return [[row[j] for j in keep_c] for row in grid], rows, edges


def _merge_spanned(grid: list[list[str]], covered: list[list[bool]], ys: list[float],
                   xs: list[float]) -> tuple[list[list[str]], list[float], list[float]]:
    """A column (or row) that spanning cells cover in every row (column) is no column
    of the table, only an edge drawn inside one cell: it is folded into its neighbour."""
    cols = [j for j in range(len(xs) - 1) if j == 0 or not all(r[j] for r in covered)]
    rows = [i for i in range(len(ys) - 1) if i == 0 or not all(covered[i][j] for j in cols)]
    return ([[grid[i][j] for j in cols] for i in rows], [ys[i] for i in rows] + [ys[-1]],
            [xs[j] for j in cols] + [xs[-1]])


def _is_data(grid: list[list[str]]) -> bool:
    if len(grid) < 2 or len(grid[0]) < 2:
        return False
    filled = [c for row in grid for c in row if c.strip()]
    return sum(len(c) for c in filled) / len(filled) <= _MAX_CELL_CHARS


def _count_lines(page: Any, tables: list[PdfTable]) -> None:
    """How many text lines lie above the first and below the last table on the page, so
    that :class:`TableJoiner` can tell a table that runs on from one that ends."""
    if not tables:
        return
    dy = float(page.cropbox[1])
    tops = {round(float(ch["top"]) - dy) for ch in page.chars if ch["text"].strip()}
    first, last = tables[0].rows[0][1], tables[-1].rows[-1][2]
    tables[0].lines_above = len({t for t in tops if t < first - 1})
    tables[-1].lines_below = len({t for t in tops if t > last + 1})


def _one_line(exc: BaseException) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:200]


# -- joining across pages and turning tables into pieces -----------------------------------

def continues(prev: PdfTable, nxt: PdfTable) -> bool:
    """Whether ``nxt`` (the first table of a page) carries on ``prev`` (the last of the
    page before): ``prev`` ends its page, ``nxt`` starts its page, and their columns
    have the same count and edges."""
    if nxt.pages[0] != prev.pages[-1] + 1:
        return False
    if prev.lines_below > _EDGE_LINES or nxt.lines_above > _EDGE_LINES:
        return False
    if len(prev.xs) != len(nxt.xs):
        return False
    return all(abs(a - b) <= _EDGE_TOL for a, b in zip(prev.xs, nxt.xs, strict=True))


def join(prev: PdfTable, nxt: PdfTable) -> PdfTable:
    """One table of ``prev`` and ``nxt``'s rows; a header row repeated on the new page is
    dropped."""
    skip = 1 if nxt.grid[0] == prev.grid[0] else 0
    return PdfTable(grid=prev.grid + nxt.grid[skip:], rows=prev.rows + nxt.rows[skip:],
                    xs=nxt.xs, pages=prev.pages + nxt.pages,
                    lines_above=prev.lines_above, lines_below=nxt.lines_below)


class TableJoiner:
    """Holds each page's last table back until the next page shows whether it goes on.

    Pages are fed in order; a page that was skipped (unreadable) breaks a run."""

    def __init__(self) -> None:
        self._held: PdfTable | None = None

    def feed(self, page: int, tables: Sequence[PdfTable]) -> Iterator[PdfTable]:
        """The tables complete once ``page`` is known, in page order."""
        todo = list(tables)
        held, self._held = self._held, None
        if held is not None:
            if todo and todo[0].pages[0] == page and continues(held, todo[0]):
                todo[0] = join(held, todo[0])
            else:
                yield held
        if todo and todo[-1].lines_below <= _EDGE_LINES:
            self._held = todo.pop()
        yield from todo

    def flush(self) -> Iterator[PdfTable]:
        """The table still held at the end of the document."""
        held, self._held = self._held, None
        if held is not None:
            yield held


def table_items(table: PdfTable, settings: IngestSettings, meta: dict[str, Any]
                ) -> Iterator[Piece]:
    """Text pieces of one table (Markdown, header row repeated in every chunk), each on
    the page of its first body row with the box of its rows there."""
    extra: dict[str, Any] = {**meta, "origin": "text", "col_x": table.xs}
    if len(table.pages) > 1:
        extra["table_pages"] = table.pages
    for piece in table_pieces(table.grid, settings, page=table.pages[0], metadata=extra):
        first, last = (int(v) for v in str(piece.metadata["rows"]).split("-"))
        rows = [table.rows[0]] + table.rows[max(first, 2) - 1:last]  # header + body rows
        piece.page = rows[1][0] if len(rows) > 1 else rows[0][0]
        here = [r for r in rows if r[0] == piece.page]
        piece.bbox = (table.xs[0], min(r[1] for r in here), table.xs[-1],
                      max(r[2] for r in here))
        piece.metadata["row_y"] = [list(r) for r in rows]
        # the Markdown is not a span of the page text: the box, not offsets, locates it
        piece.chunk_start = piece.chunk_end = 0
        yield piece
