"""CSV and TSV files as tables: Markdown chunks with the header row repeated in each.

A delimited file is a table, so it is indexed like an office table
(:func:`~mmrag.ingest.office.tables.table_pieces`): each chunk holds whole rows under the
header line, with ``metadata = {"table": True, "rows": "first-last", "columns": n}`` (the
header is row 1, as in a spreadsheet). Rows are read in blocks, so a large file never
sits in memory as one grid; ``chunk_start``/``chunk_end`` span the chunk's rows in the
decoded file. The sniffer only calls a file CSV when its name says so and its first
lines parse into a steady number of columns (:func:`~mmrag.ingest.sniff.delimiter`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from ..config import IngestSettings
from ..types import Blob
from .base import Piece, loaders
from .office.tables import table_pieces
from .sniff import delimiter
from .text import decode_text

__all__ = ["load_delimited"]

_BLOCK_ROWS = 2000


@loaders.register("csv")
def load_delimited(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """Table chunks of a CSV/TSV file (``text/csv``, ``text/tab-separated-values``)."""
    text = decode_text(blob.data)
    tabs = blob.mime.startswith("text/tab-separated-values")
    delim = delimiter(text[:65536], tabs) or ("\t" if tabs else ",")
    rows = _rows(text, delim)
    first = next(rows, None)
    if first is None:
        return
    header_row, header_span = first
    header = _header(header_row, text[:65536], delim)
    block: list[tuple[list[str], tuple[int, int], int]] = []
    opening = True  # the first chunk of the file counts the header row, as office tables do
    number = 1  # the header is row 1
    if header is not header_row:  # no header line: the first line is data
        block.append((header_row, header_span, number + 1))
        number += 1
    for row, span in rows:
        number += 1
        if any(cell.strip() for cell in row):
            block.append((row, span, number))
        if len(block) >= _BLOCK_ROWS:
            yield from _block_pieces(header, block, settings, opening)
            block, opening = [], False
    if block or opening:
        yield from _block_pieces(header, block, settings, opening)


def _rows(text: str, delim: str) -> Iterator[tuple[list[str], tuple[int, int]]]:
    """Parsed rows with the span of the file text they came from (a quoted field may
    run over several lines)."""
    pos = 0

    def lines() -> Iterator[str]:
        nonlocal pos
        for line in io.StringIO(text, newline=""):
            pos += len(line)
            yield line

    start = 0
    for row in csv.reader(lines(), delimiter=delim):
        yield row, (start, pos)
        start = pos


def _header(first: list[str], sample: str, delim: str) -> list[str]:
    """The first row when it names the columns, else ``column 1``... (csv.Sniffer's test:
    header cells differ in type or length from the columns below them)."""
    try:
        named = csv.Sniffer().has_header(sample) if sample.count("\n") > 1 else True
    except csv.Error:
        named = True
    if named and any(cell.strip() for cell in first):
        return first
    return [f"column {i}" for i in range(1, len(first) + 1)]


def _block_pieces(header: list[str], block: list[tuple[list[str], tuple[int, int], int]],
                  settings: IngestSettings, opening: bool) -> Iterator[Piece]:
    """``table_pieces`` over one block of rows, its row numbers and spans made absolute."""
    width = max([len(header)] + [len(r) for r, _, _ in block])
    # every column named, so the grid cleaning never drops one in a block it is empty in
    names = [h if h.strip() else f"column {i}"
             for i, h in enumerate(header + [""] * (width - len(header)), 1)]
    grid = [names] + [r + [""] * (width - len(r)) for r, _, _ in block]
    meta: dict[str, Any] = {}
    for piece in table_pieces(grid, settings, metadata=meta):
        lo, hi = (int(n) for n in piece.metadata["rows"].split("-"))
        body = block[max(lo, 2) - 2:hi - 1]  # grid row n is block entry n - 2
        if body:
            first = 1 if lo == 1 and opening else body[0][2]  # row 1 is the header
            piece.metadata["rows"] = f"{first}-{body[-1][2]}"
            piece.chunk_start, piece.chunk_end = body[0][1][0], body[-1][1][1]
        yield piece
