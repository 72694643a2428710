"""Page renders through LibreOffice headless, and legacy formats converted by it.

Skipped where LibreOffice is not installed (``make install`` installs it)."""

from __future__ import annotations

import pytest

from mmrag.config import IngestSettings
from mmrag.ingest import containers as c
from mmrag.ingest import load
from mmrag.ingest.office.convert import convert
from mmrag.ingest.sniff import sniff
from mmrag.types import Blob
from tests.ingest.office_docs import make_docx, make_pptx, make_xlsx, needs_libreoffice

pytestmark = needs_libreoffice

SETTINGS = IngestSettings(office_timeout=90, ocr="never")


def pieces_of(data: bytes, mime: str | None = None):
    mime = mime or sniff(data)
    return list(load(Blob(uri="/in/doc", data=data, mime=mime), SETTINGS))


def pages(pieces):
    return [p for p in pieces if p.modality == "page"]


def test_docx_pieces_follow_the_rendered_pages():
    pieces = pieces_of(make_docx(pages=3), c.DOCX)
    rendered = pages(pieces)
    assert [p.page for p in rendered] == [1, 2, 3]
    assert all(p.image is not None and p.metadata["rendered_by"] == "libreoffice"
               for p in rendered)
    assert "Fleet size" in rendered[0].text and "ACME Confidential" in rendered[1].text
    for n in (2, 3):
        body = next(p for p in pieces if f"appendix text on page {n}" in p.text)
        assert body.page == n and body.metadata["page_source"] == "rendered"
    table = next(p for p in pieces if p.metadata.get("table"))
    assert table.page == 1
    image = next(p for p in pieces if p.modality == "image")
    assert image.page == 1


def test_pptx_one_render_per_shown_slide():
    pieces = pieces_of(make_pptx(hidden=2), c.PPTX)
    rendered = pages(pieces)
    assert [p.page for p in rendered] == [1, 3]  # LibreOffice does not print hidden slides
    assert "Granite tower" in rendered[1].text
    assert rendered[0].metadata["slides"] == 3


def test_xlsx_sheet_renders_by_their_words():
    pieces = pieces_of(make_xlsx(long_rows=120), c.XLSX)
    rendered = pages(pieces)
    assert [p.page for p in rendered] == [1, 3]  # the hidden sheet is not printed
    assert "Rotterdam" in rendered[0].text
    ledger = rendered[1]
    assert "entry-1 " in ledger.text and "entry-120" in ledger.text
    assert ledger.metadata["pdf_pages"] >= 2  # one sheet printed on several PDF pages


def test_odt_from_libreoffice_is_indexed_with_renders():
    odt = convert(make_docx(), "docx", "odt", "/in/doc", SETTINGS)
    assert sniff(odt, "whatever.bin") == c.ODT
    pieces = pieces_of(odt)
    assert [p.page for p in pages(pieces)] == [1, 2]
    appendix = next(p for p in pieces if "Marmalade cormorant" in p.text)
    assert appendix.page == 2 and appendix.section.startswith("Appendix")
    table = next(p for p in pieces if p.metadata.get("table"))
    assert "| trawlers | 114 | North |" in table.text
    assert any(p.metadata.get("part") == "header" and "ACME" in p.text for p in pieces)


@pytest.mark.parametrize(("make", "source", "legacy", "mime"), [
    (make_docx, "docx", "doc", c.DOC), (make_pptx, "pptx", "ppt", c.PPT),
])
def test_legacy_formats_convert_and_load(make, source, legacy, mime):
    old = convert(make(), source, legacy, "/in/doc", SETTINGS)
    assert sniff(old, "renamed.pdf") == mime or c.sniff_head(old) == c.OLE2
    pieces = pieces_of(old, mime)
    assert all(p.metadata["converted_from"] == legacy for p in pieces)
    assert pages(pieces)
    table = next(p for p in pieces if p.metadata.get("table"))
    assert "trawlers" in table.text or "kayaks" in table.text


def test_rtf_converts_and_loads():
    rtf = b"{\\rtf1\\ansi{\\fonttbl\\f0\\fswiss Helvetica;}\\f0 Albatross rtf memo\\par}"
    assert sniff(rtf, "memo.txt") == c.RTF
    pieces = pieces_of(rtf)
    assert any("Albatross rtf memo" in p.text for p in pieces if p.modality == "text")
    assert [p.page for p in pages(pieces)] == [1]


def test_odp_and_ods_written_by_libreoffice():
    odp = convert(make_pptx(hidden=2), "pptx", "odp", "/in/doc", SETTINGS)
    assert sniff(odp, "deck.pptx") == c.ODP
    pieces = pieces_of(odp)
    assert [p.page for p in pages(pieces)] == [1, 3]  # the hidden slide has no render
    notes = next(p for p in pieces if p.metadata.get("part") == "notes")
    assert notes.page == 2 and "pelican pilot" in notes.text and notes.metadata["hidden"]
    assert not any("pelican" in p.text for p in pieces if p.metadata.get("part") == "slide")
    table = next(p for p in pieces if p.metadata.get("table"))
    assert table.page == 2 and "| canoes | green | 95 |" in table.text
    assert any(p.modality == "image" and p.page == 3 for p in pieces)

    ods = convert(make_xlsx(long_rows=5), "xlsx", "ods", "/in/doc", SETTINGS)
    assert sniff(ods, "book.xlsx") == c.ODS
    pieces = pieces_of(ods)
    assert [p.page for p in pages(pieces)] == [1, 3]
    summary = next(p for p in pieces if p.metadata.get("sheet") == "Summary"
                   and p.metadata.get("table"))
    assert "| Total | 707.8 |" in summary.text  # the value LibreOffice computed and saved
    assert not any("walrus" in p.text for p in pieces)
