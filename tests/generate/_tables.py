"""A text-layer PDF page with a ruled results table at known cell edges (points, top-left
origin), for the tests of table-cell answers and of the citation box that points at it."""

from __future__ import annotations

from tests.ingest.pdf_tables_made import ROW_H, Page, build, grid

LEFT, TOP = 72.0, 200.0
WIDTHS = (170.0, 90.0, 90.0)
ROWS = [["Model", "BLEU EN-DE", "BLEU EN-FR"],
        ["ConvS2S", "25.16", "40.46"],
        ["Transformer (base model)", "27.3", "38.1"],
        ["Transformer (big)", "28.4", "41.8"]]
QUESTION = "What BLEU score does the Transformer big model reach on English-to-German?"


def cell_box(row: int, col: int) -> tuple[float, float, float, float]:
    """Where cell (row, col) of ROWS was drawn (row 0 is the header)."""
    x0 = LEFT + sum(WIDTHS[:col])
    return x0, TOP + ROW_H * row, x0 + WIDTHS[col], TOP + ROW_H * (row + 1)


def results_pdf() -> bytes:
    """One Letter page: a paragraph about the results, then the table below it."""
    page = Page()
    page.paragraph(90, ["Table 2 compares the Transformer with earlier translation models.",
                        "The big model sets a new state of the art on both tasks."])
    grid(page, LEFT, TOP, WIDTHS, ROWS)
    return build([page])
