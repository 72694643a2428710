"""Tables in text-layer PDFs: Markdown table items with merged cells resolved, the header
repeated in every chunk, boxes where the table was drawn, and tables joined across pages."""

from __future__ import annotations

import logging

import pytest

from mmrag.config import IngestSettings, Settings
from mmrag.ingest import pdf_tables
from mmrag.ingest.base import Piece
from mmrag.ingest.pdf import load_pdf
from mmrag.types import Blob
from tests.ingest.pdf_tables_made import ROW_H, Page, build, grid

pytest.importorskip("pdfplumber")

FAST = {"ocr": "never", "pdf_figures": False, "visual_facets": False}
SALES = [["Region", "Sales 2023", ""], ["North", "120", "135"], ["South", "90", "80"],
         ["East", "70", "65"]]


def _load(data: bytes, **kw: object) -> list[Piece]:
    blob = Blob(uri="mem:tables.pdf", data=data, name="tables.pdf", mime="application/pdf")
    return list(load_pdf(blob, IngestSettings(**{**FAST, **kw})))


def _tables(pieces: list[Piece]) -> list[Piece]:
    return [p for p in pieces if p.metadata.get("table")]


def _rows(text: str) -> list[list[str]]:
    """Markdown table lines back into cells (the ``|---|`` line left out)."""
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|") and "---" not in line]


def _near(box: tuple[float, ...] | None, drawn: tuple[float, ...], tol: float = 2.0) -> bool:
    return box is not None and all(abs(a - b) <= tol for a, b in zip(box, drawn, strict=True))


def _sales_pdf() -> tuple[bytes, tuple[float, float, float, float]]:
    page = Page()
    page.paragraph(60, ["Quarterly sales by region are in the table below."])
    box = grid(page, 72, 100, [120, 90, 90], SALES, spans={(0, 1): 2})
    page.paragraph(220, ["Sales rose in the north."])
    return build([page]), box


def test_ruled_table_with_merged_header_is_one_markdown_item():
    data, box = _sales_pdf()
    pieces = _load(data)
    [table] = _tables(pieces)
    assert table.modality == "text" and table.page == 1
    assert _rows(table.text) == [["Region", "Sales 2023", "Sales 2023"],  # merged, repeated
                                 ["North", "120", "135"], ["South", "90", "80"],
                                 ["East", "70", "65"]]
    assert table.metadata["columns"] == 3 and table.metadata["rows"] == "1-4"
    assert table.metadata["origin"] == "text" and table.metadata["pages"] == 1
    assert _near(table.bbox, box)
    assert table.metadata["col_x"] == pytest.approx([72, 192, 282, 372], abs=1)
    assert [r[1] for r in table.metadata["row_y"]] == pytest.approx(
        [100 + i * ROW_H for i in range(4)], abs=1)
    # the page and its prose chunks are still there, before the table
    assert [p.modality for p in pieces[:2]] == ["page", "text"]
    assert "Sales rose" in pieces[1].text


def test_vertically_merged_cell_is_repeated_in_every_row_it_covers():
    page = Page()
    rows = [["Team", "Member", "Role"], ["Core", "Ann", "lead"], ["", "Bob", "dev"],
            ["Docs", "Cy", "writer"]]
    grid(page, 72, 100, [100, 100, 100], rows, vspans={(1, 0): 2})
    [table] = _tables(_load(build([page])))
    assert _rows(table.text)[1:] == [["Core", "Ann", "lead"], ["Core", "Bob", "dev"],
                                     ["Docs", "Cy", "writer"]]


def test_booktabs_table_without_vertical_rules():
    page = Page()
    rows = [["Model", "Dataset", "Score"], ["alpha", "wiki", "0.81"], ["beta", "news", "0.77"],
            ["gamma", "web", "0.69"]]
    box = grid(page, 72, 100, [120, 150, 90], rows, rules_only=True)
    [table] = _tables(_load(build([page])))
    assert _rows(table.text) == rows
    assert _near(table.bbox, box)


def test_booktabs_rules_drawn_as_filled_bars():
    page = Page()
    rows = [["Model", "Params", "Score"], ["small", "60M", "0.61"], ["base", "220M", "0.70"]]
    box = grid(page, 72, 300, [120, 90, 90], rows, rules_only=True, bars=True)
    [table] = _tables(_load(build([page])))
    assert _rows(table.text) == rows
    assert _near(table.bbox, box, tol=3)


def test_prose_between_rules_is_not_a_table():
    page = Page()
    page.bar(72, 50, 540)  # running header rule
    page.paragraph(70, [f"Line {i} of ordinary prose that runs across the page width."
                        for i in range(20)])
    page.bar(72, 360, 540)
    page.bar(72, 380, 540)
    assert not _tables(_load(build([page])))


def test_long_table_repeats_its_header_in_every_chunk():
    page = Page()
    rows = [["Item", "Quantity", "Price"]] + [[f"part-{i:02d}", str(i * 3), f"{i}.50"]
                                              for i in range(30)]
    box = grid(page, 72, 60, [120, 90, 90], rows)
    chunks = _tables(_load(build([page]), chunk_size=200))
    assert len(chunks) > 2
    body = []
    for chunk in chunks:
        cells = _rows(chunk.text)
        assert cells[0] == ["Item", "Quantity", "Price"]
        body += cells[1:]
        assert len(chunk.text) <= 200
        assert box[0] - 1 <= chunk.bbox[0] and chunk.bbox[2] <= box[2] + 1
        assert box[1] - 1 <= chunk.bbox[1] < chunk.bbox[3] <= box[3] + 1
    assert body == rows[1:]
    tops = [c.bbox[1] for c in chunks]
    assert tops == sorted(tops)  # chunk boxes follow the rows down the page


def _split_pdf(second_header: bool = True, prose_first: int = 0,
               widths: tuple[float, ...] = (120, 90, 90)) -> bytes:
    head = ["City", "Population", "Area"]
    rows = [[f"City {i}", str(1000 + i), str(50 + i)] for i in range(17)]
    first, second = Page(), Page()
    first.paragraph(60, ["Cities of the region, continued on the next page."])
    grid(first, 72, 520, [120, 90, 90], [head, *rows[:12]])   # ends at 780 of 792
    top = 50 + 14 * prose_first
    second.paragraph(50, [f"Unrelated remark number {i}." for i in range(prose_first)])
    grid(second, 72, top, list(widths), ([head] if second_header else []) + rows[12:])
    return build([first, second])


def test_table_split_over_two_pages_is_joined():
    pieces = _load(_split_pdf())
    [table] = _tables(pieces)
    assert table.page == 1 and table.metadata["table_pages"] == [1, 2]
    cells = _rows(table.text)
    assert cells[0] == ["City", "Population", "Area"]
    assert [r[0] for r in cells[1:]] == [f"City {i}" for i in range(17)]  # header once
    assert _near(table.bbox, (72, 520, 372, 780))
    assert {r[0] for r in table.metadata["row_y"]} == {1, 2}
    # held back until the pages after it show where it ends, so it comes last
    assert pieces[-1] is table


def test_joined_table_without_a_repeated_header_keeps_every_row():
    [table] = _tables(_load(_split_pdf(second_header=False)))
    assert [r[0] for r in _rows(table.text)[1:]] == [f"City {i}" for i in range(17)]


def test_tables_are_not_joined_when_columns_differ_or_prose_comes_first():
    for data in (_split_pdf(widths=(150, 90, 60)), _split_pdf(prose_first=5)):
        tables = _tables(_load(data))
        assert [t.page for t in tables] == [1, 2]
        assert all("table_pages" not in t.metadata for t in tables)


def test_joined_long_table_chunks_sit_on_the_page_of_their_rows():
    chunks = _tables(_load(_split_pdf(), chunk_size=200))
    assert {c.page for c in chunks} == {1, 2}
    assert all(c.metadata["table_pages"] == [1, 2] for c in chunks)
    assert all(_rows(c.text)[0] == ["City", "Population", "Area"] for c in chunks)
    last = chunks[-1]
    assert last.page == 2 and last.bbox[1] < 200  # at the top of page 2


def test_page_without_a_table_has_no_table_item_and_skips_pdfplumber(monkeypatch):
    calls: list[int] = []
    real = pdf_tables.TableFinder.find
    monkeypatch.setattr(pdf_tables.TableFinder, "find",
                        lambda self, i: calls.append(i) or real(self, i))
    prose = Page()
    prose.paragraph(60, ["Plain prose with no table at all.", "A second line of it."])
    prose.line(72, 700, 150, 700)  # a footnote rule is no table
    data, _ = _sales_pdf()
    assert not _tables(_load(build([prose])))
    assert calls == []
    _load(data)
    assert calls == [0]


def test_setting_off_gives_no_table_items(monkeypatch):
    data, _ = _sales_pdf()
    assert not _tables(_load(data, pdf_tables=False))
    monkeypatch.setenv("MMRAG_INGEST__PDF_TABLES", "false")
    assert Settings().ingest.pdf_tables is False


def test_failing_table_finder_keeps_the_page(monkeypatch, caplog):
    def broken(page: object, page_no: int) -> list[object]:
        raise RuntimeError("bad table")

    monkeypatch.setattr(pdf_tables, "page_tables", broken)
    data, _ = _sales_pdf()
    with caplog.at_level(logging.WARNING, logger="mmrag.ingest.pdf_tables"):
        pieces = _load(data)
    assert not _tables(pieces)
    assert [p.modality for p in pieces] == ["page", "text"]
    assert "table finding failed" in caplog.text and "bad table" in caplog.text


def test_diagram_boxes_are_not_tables():
    page = Page()
    page.paragraph(40, ["A flow chart."])
    for i, label in enumerate(["Load", "Parse", "Embed"]):  # three separate boxes
        x = 72 + i * 150
        for y0, y1 in ((100, 100), (140, 140)):
            page.line(x, y0, x + 100, y1)
        page.line(x, 100, x, 140)
        page.line(x + 100, 100, x + 100, 140)
        page.text(x + 10, 112, label)
    assert not _tables(_load(build([page])))
