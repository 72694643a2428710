"""PDFs with tables drawn in code: ruling lines and cell text at known coordinates.

Coordinates here are top-left (points, y down), the frame the PDF loader reports boxes
in; the content stream gets them flipped to PDF user space.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tests.factories import _pdf, _pdf_escape

W, H = 612, 792
ROW_H = 20.0


@dataclass
class Page:
    """One page's drawing operations."""

    ops: list[bytes] = field(default_factory=list)

    def text(self, x: float, top: float, s: str, size: int = 10) -> None:
        base = H - top - size  # baseline one font size below the top
        self.ops.append(b"BT /F1 %d Tf %.2f %.2f Td (" % (size, x, base) + _pdf_escape(s)
                        + b") Tj ET")

    def line(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.ops.append(b"%.2f %.2f m %.2f %.2f l S" % (x0, H - y0, x1, H - y1))

    def bar(self, x0: float, y: float, x1: float, height: float = 0.8) -> None:
        """A rule drawn as a thin filled rectangle, as LaTeX draws ``\\toprule``."""
        self.ops.append(b"%.2f %.2f %.2f %.2f re f" % (x0, H - y - height, x1 - x0, height))

    def paragraph(self, top: float, lines: Sequence[str]) -> None:
        for i, s in enumerate(lines):
            self.text(72, top + 14 * i, s)


def grid(page: Page, x: float, top: float, widths: Sequence[float],
         rows: Sequence[Sequence[str]], spans: dict[tuple[int, int], int] | None = None,
         vspans: dict[tuple[int, int], int] | None = None,
         rules_only: bool = False, bars: bool = False) -> tuple[float, float, float, float]:
    """A ruled table. ``spans[(r, c)] = n`` merges cell (r, c) over n columns and
    ``vspans[(r, c)] = n`` over n rows: its text is written once and no rule is drawn
    inside it. ``rules_only`` draws booktabs: a rule above, under the header and below,
    nothing else (as filled bars with ``bars``). Returns the table's box."""
    edges = [x]
    for w in widths:
        edges.append(edges[-1] + w)
    bottom = top + ROW_H * len(rows)
    if rules_only:
        for y in (top, top + ROW_H, bottom):
            if bars:
                page.bar(edges[0], y, edges[-1])
            else:
                page.line(edges[0], y, edges[-1], y)
    across = {(r, c + k) for (r, c), n in (spans or {}).items() for k in range(1, n)}
    down = {(r + k, c) for (r, c), n in (vspans or {}).items() for k in range(1, n)}
    for r, row in enumerate(rows):
        y = top + r * ROW_H
        for c, value in enumerate(row):
            if value and (r, c) not in across | down:
                page.text(edges[c] + 4, y + 5, value)
            if not rules_only and (r, c) not in down:  # the rule above the cell
                page.line(edges[c], y, edges[c + 1], y)
            if not rules_only and (r, c) not in across:  # the rule left of it
                page.line(edges[c], y, edges[c], y + ROW_H)
        if not rules_only:
            page.line(edges[-1], y, edges[-1], y + ROW_H)
    if not rules_only:
        page.line(edges[0], bottom, edges[-1], bottom)
    return edges[0], top, edges[-1], bottom


def build(pages: Sequence[Page]) -> bytes:
    """A PDF of the drawn pages (Helvetica text layer, stroked rules)."""
    n = len(pages)
    kids = [4 + 2 * i for i in range(n)]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids)
        + b"] /Count %d >>" % n,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, page in enumerate(pages):
        stream = b"\n".join([b"0.8 w", *page.ops])
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % (W, H)
                       + b"/Resources << /Font << /F1 3 0 R >> >> "
                       + b"/Contents %d 0 R >>" % (kids[i] + 1))
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    return _pdf(objects)
