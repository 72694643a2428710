"""Tables as Markdown text pieces: one piece per table, or per run of rows of a long one.

A table is searched by its cells' words and read by a generator as a table, so it is kept
out of the prose chunks and written as a Markdown table. Merged cells arrive resolved (the
loaders repeat a merged value in every cell it covers, so each row stands on its own), and
a table longer than ``ingest.chunk_size`` is cut between rows with its header row repeated
at the top of every chunk: a chunk of rows 40-60 still says what its columns are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ...config import IngestSettings
from ..base import Piece

__all__ = ["Grid", "clean_grid", "markdown_lines", "table_pieces"]

Grid = list[list[str]]


def _cell(value: str) -> str:
    # a Markdown cell is one line; a literal pipe would start a new column
    return " ".join(str(value).split()).replace("|", "\\|")


def clean_grid(rows: Sequence[Sequence[Any]]) -> Grid:
    """Cells as one-line strings, rows padded to one width, empty rows and columns
    dropped (a sheet's used range often has blank margins)."""
    grid = [[_cell(c) if c is not None else "" for c in row] for row in rows]
    grid = [row for row in grid if any(row)]
    if not grid:
        return []
    width = max(len(row) for row in grid)
    grid = [row + [""] * (width - len(row)) for row in grid]
    keep = [j for j in range(width) if any(row[j] for row in grid)]
    return [[row[j] for j in keep] for row in grid]


def markdown_lines(grid: Grid) -> tuple[str, list[str]]:
    """The header block (first row and the ``---`` line) and one line per other row."""
    def line(row: list[str]) -> str:
        return "| " + " | ".join(row) + " |"

    header = line(grid[0]) + "\n|" + "---|" * len(grid[0])
    return header, [line(row) for row in grid[1:]]


def table_pieces(rows: Sequence[Sequence[Any]], settings: IngestSettings, *, page: int = 1,
                 section: str = "", title: str = "", metadata: dict[str, Any] | None = None,
                 offset: int = 0) -> Iterator[Piece]:
    """``Piece("text")`` per chunk of the table, text = ``title`` (if any) and a Markdown
    table, metadata ``{"table": True, "rows": "first-last", "columns": n, ...}``; row
    numbers count the header as row 1. ``offset`` places the pieces in the document text."""
    grid = clean_grid(rows)
    if not grid:
        return
    header, lines = markdown_lines(grid)
    lead = f"{title}\n\n{header}" if title else header
    budget = max(settings.chunk_size - len(lead) - 1, 1)
    start = 0
    while True:
        size, end = 0, start
        while end < len(lines) and (end == start or size + len(lines[end]) + 1 <= budget):
            size += len(lines[end]) + 1
            end += 1
        text = "\n".join([lead, *lines[start:end]])
        first = 1 if start == 0 else start + 2  # row 1 is the header
        meta = {**(metadata or {}), "table": True, "rows": f"{first}-{end + 1}",
                "columns": len(grid[0])}
        yield Piece(modality="text", text=text, page=page, section=section,
                    chunk_start=offset, chunk_end=offset + len(text), metadata=meta)
        if end >= len(lines):
            return
        start = end
