"""XLSX loader (openpyxl): sheet n in workbook order is page n; each sheet's used range is
one table (Markdown, header row repeated in every chunk), cells shown as the values Excel
cached (``data_only``), not their formulas; merged cells repeat their value; hidden sheets
are skipped unless ``ingest.office_hidden_sheets``; pictures become image pieces.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
import zipfile
from collections.abc import Iterator
from datetime import date, datetime, time
from typing import Any

from ...config import IngestSettings
from ...errors import IngestError, MissingDependencyError
from ...types import Blob
from ..base import Piece, loaders
from ..containers import ZIP_MEMBER_ERRORS, open_zip
from .document import Structure, core_metadata, office_pieces
from .pictures import picture_pieces
from .render import words
from .tables import clean_grid, table_pieces

__all__ = ["MAX_CELLS", "load_xlsx", "parse_xlsx"]

log = logging.getLogger(__name__)

# cells read per sheet: a used range of a million rows would be a few GB of Python strings
MAX_CELLS = 2_000_000
_MERGE_REF = re.compile(rb'<(?:\w+:)?mergeCell\b[^>]*?\bref="([^"]*)"')


@loaders.register("xlsx")
def load_xlsx(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """A workbook: one table per sheet, then (LibreOffice) one page piece per sheet."""
    yield from office_pieces(blob, settings, "xlsx", parse_xlsx)


def _open(blob: Blob, settings: IngestSettings) -> Any:
    try:
        import openpyxl
    except ImportError:
        raise MissingDependencyError("XLSX files", "office") from None
    with open_zip(blob.data, blob.uri, max_bytes=settings.office_max_unzipped_bytes,
                  max_ratio=settings.office_max_zip_ratio) as zf:
        _refuse_merge_bomb(zf, blob.uri)
    try:
        # warnings: "unknown extension" noise on valid files; stdout: openpyxl print()s
        # "4294967295 is out of range" for a damaged style index (found by the fuzzer),
        # which would land inside `mmrag add --json` output
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()) as out:
            warnings.simplefilter("ignore")
            wb = openpyxl.load_workbook(io.BytesIO(blob.data), data_only=True)
        if out.getvalue():
            log.debug("%s: openpyxl said %s", blob.uri, " ".join(out.getvalue().split()))
        return wb
    except Exception as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise IngestError(blob.uri, f"corrupt XLSX: {reason}") from None


def _refuse_merge_bomb(zf: zipfile.ZipFile, uri: str) -> None:
    """openpyxl makes one object per cell of every merged range while loading: a 100-byte
    ``<mergeCell ref="A1:XFD1048576"/>`` would take hours and all memory (found by the
    loader fuzzer). Merged ranges covering more than MAX_CELLS cells are refused first."""
    from openpyxl.utils.cell import range_boundaries

    total = 0
    for name in zf.namelist():
        if not (name.startswith("xl/worksheets/") and name.endswith(".xml")):
            continue
        try:
            xml = zf.read(name)
        except ZIP_MEMBER_ERRORS:
            continue  # openpyxl reports the damaged member
        for ref in _MERGE_REF.findall(xml):
            try:
                left, top, right, bottom = range_boundaries(ref.decode("ascii", "replace"))
            except (ValueError, TypeError):
                continue
            if None in (left, top, right, bottom):
                continue
            total += (abs(right - left) + 1) * (abs(bottom - top) + 1)
            if total > MAX_CELLS:
                raise IngestError(uri, f"spreadsheet bomb refused: merged cells cover more "
                                       f"than {MAX_CELLS} cells")


def parse_xlsx(blob: Blob, settings: IngestSettings) -> Structure:
    wb = _open(blob, settings)
    try:
        meta = {**core_metadata(wb.properties), "sheets": len(wb.sheetnames)}
        pieces: list[Piece] = []
        units: list[tuple[int, set[str]]] = []
        for number, ws in enumerate(wb._sheets, 1):  # workbook order, chart sheets too
            if not hasattr(ws, "iter_rows"):  # a chart sheet: no cells
                continue
            hidden = ws.sheet_state != "visible"
            if hidden and not settings.office_hidden_sheets:
                continue
            rows = sheet_rows(ws, blob.uri)
            base = {"sheet": ws.title, "sheet_index": number, "part": "sheet"}
            if hidden:
                base["hidden"] = True
            else:  # LibreOffice prints visible sheets only
                units.append((number, {w for row in clean_grid(rows) for c in row
                                       for w in words(c)}))
            pieces += table_pieces(rows, settings, page=number, section=ws.title,
                                   title=f"Sheet {ws.title}",
                                   metadata={**base, "range": ws.dimensions})
            pieces += _pictures(ws, number, base, blob.uri, settings)
        return Structure(pieces, "sheets", meta, units)
    finally:
        wb.close()


def sheet_rows(ws: Any, uri: str = "") -> list[list[str]]:
    """The used range as rows of display strings, merged cells filled in."""
    top, left = ws.min_row, ws.min_column
    height, width = ws.max_row - top + 1, ws.max_column - left + 1
    if height * width > MAX_CELLS:
        log.warning("%s: sheet %r has %d cells; the first %d are read", uri, ws.title,
                    height * width, MAX_CELLS)
        height = max(1, MAX_CELLS // max(width, 1))
    # From the cells the file holds, not iter_rows: that makes (and keeps) a Cell object
    # for every empty position, 12 s for one value written at row 99999999999999.
    rows = [[""] * width for _ in range(height)]
    for (r, c), cell in ws._cells.items():
        i, j = r - top, c - left
        if 0 <= i < height and 0 <= j < width:
            rows[i][j] = value_text(cell.value)
    for rng in ws.merged_cells.ranges:
        value = value_text(ws.cell(rng.min_row, rng.min_col).value)
        for r in range(rng.min_row, rng.max_row + 1):
            for c in range(rng.min_col, rng.max_col + 1):
                i, j = r - top, c - left
                if 0 <= i < len(rows) and 0 <= j < len(rows[i]):
                    rows[i][j] = value
    return rows


def value_text(value: Any) -> str:
    """A cell value as a person reads it: 12 not 12.0, dates without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return f"{value:.15g}"
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else \
            value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def _pictures(ws: Any, number: int, base: dict[str, Any], uri: str,
              settings: IngestSettings) -> list[Piece]:
    out: list[Piece] = []
    for index, image in enumerate(getattr(ws, "_images", [])):
        try:
            data = image._data()
        except Exception:  # an image openpyxl kept a reference to but cannot read
            continue
        out += picture_pieces(data, uri, settings, page=number, section=ws.title,
                              name=f"{ws.title}-image{index + 1}", metadata=base)
    return out
